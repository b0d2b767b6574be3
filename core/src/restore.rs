//! Planning and running a restore: validate the chain of layers, find the catalog as of the
//! restore time, choose what to bring back, give it new ids, merge the layers newest-first per
//! key (honouring deletions) reading only the blocks that hold it, and publish everything in one
//! step at the end.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures::future::{maybe_done, MaybeDone};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backup::expand_table_name;
use crate::catalog::{Catalog, DatabaseDescriptor, DescId, Descriptor, DescriptorChange, TableDescriptor};
use crate::crypto::{FileCodec, FileReader};
use crate::error::{Error, Result};
use crate::format::datafile::{decode_block, decode_footer, decode_index, BlockHandle, FOOTER_LEN};
use crate::format::manifest::{FileInfo, Manifest, MANIFEST_NAME};
use crate::keys;
use crate::kv::{Entry, KvSink};
use crate::span::{Span, SpanSet};
use crate::sql::{RestoreOptions, Targets};
use crate::stage;
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;
use crate::timestamp::Timestamp;

/// A database the restore creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRestore {
    /// Its id in the backup.
    pub old_id: DescId,
    /// The descriptor it gets in the target (new id, maybe new name).
    pub descriptor: DatabaseDescriptor,
}

/// A table the restore creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRestore {
    /// Its id in the backup (its keys' prefix there).
    pub old_id: DescId,
    /// The descriptor it gets in the target (new id, new parent).
    pub descriptor: TableDescriptor,
}

/// A data file of one layer of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFile {
    /// Index of the layer in the chain (0 = the full backup).
    pub layer: u32,
    /// The file, relative to that layer's directory.
    pub file: FileInfo,
}

/// What a restore will do, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// The time the restored data is as of.
    pub as_of: Timestamp,
    /// How many layers of the chain are read (a prefix of it).
    pub layers: u32,
    /// Databases to create.
    pub databases: Vec<DatabaseRestore>,
    /// Tables to create.
    pub tables: Vec<TableRestore>,
    /// Whether the system span's state is restored too (full-cluster restore).
    pub restore_system: bool,
    /// The data files to read.
    pub files: Vec<LayerFile>,
}

impl RestorePlan {
    /// The spans, in the target, the restore writes into.
    pub fn target_spans(&self) -> Vec<Span> {
        self.tables.iter().map(|t| t.descriptor.span()).collect()
    }

    /// Backup spans to read.
    pub fn source_spans(&self) -> SpanSet {
        let mut spans: Vec<Span> = self.tables.iter().map(|t| keys::table_span(t.old_id)).collect();
        if self.restore_system {
            spans.push(keys::system_span());
        }
        SpanSet::from_spans(spans)
    }
}

/// Checks that layers form one chain: a full backup first, then each layer starting where the
/// previous one ends. `names` are the layers' locations, for messages.
pub fn validate_chain(chain: &[Manifest], names: &[String]) -> Result<()> {
    let Some(first) = chain.first() else {
        return Err(Error::not_found("backup", "an empty list of layers"));
    };
    if !first.is_full() {
        let deps =
            if first.dependencies.is_empty() { String::new() } else { format!(": {}", first.dependencies.join(", ")) };
        return Err(Error::Precondition(format!(
            "{} is an incremental backup (from {} to {}); restore needs the whole chain, starting with its full backup{deps}",
            names[0], first.start_time, first.end_time
        )));
    }
    for (i, pair) in chain.windows(2).enumerate() {
        let (prev, next) = (&pair[0], &pair[1]);
        if next.is_full() {
            return Err(Error::Precondition(format!(
                "{} is a full backup, but it is listed as an incremental layer after {}",
                names[i + 1],
                names[i]
            )));
        }
        if next.start_time != prev.end_time {
            let missing =
                next.dependencies.get(i + 1).map(|d| format!("; the missing layer is {d}")).unwrap_or_default();
            return Err(Error::Precondition(format!(
                "the chain has a gap: {} ends at {}, but the next layer {} starts at {}{missing}",
                names[i],
                prev.end_time,
                names[i + 1],
                next.start_time
            )));
        }
        if next.scope != prev.scope || next.mvcc_filter != prev.mvcc_filter {
            return Err(Error::Precondition(format!(
                "{} does not extend {}: its targets or revision_history setting differ",
                names[i + 1],
                names[i]
            )));
        }
    }
    Ok(())
}

/// The restorable window of a chain, `[from, to]`, in words, for messages.
fn window(chain: &[Manifest]) -> (Timestamp, Timestamp) {
    let first = &chain[0];
    let lo = if first.has_revision_history() { first.revision_start_time } else { first.end_time };
    (lo, chain[chain.len() - 1].end_time)
}

/// Chooses how many layers a restore as of `t` reads, checking that `t` is restorable.
pub fn layers_for(chain: &[Manifest], t: Timestamp) -> Result<usize> {
    let (lo, hi) = window(chain);
    if t < lo || t > hi {
        return Err(Error::InvalidTime(format!(
            "cannot restore as of {t}: it is outside the backup's window [{lo}, {hi}]"
        )));
    }
    let j = chain.iter().position(|m| m.end_time >= t).expect("t <= last end time");
    if !chain[j].can_restore_to(t) {
        let ends: Vec<String> = chain.iter().map(|m| m.end_time.to_string()).collect();
        return Err(Error::InvalidTime(format!(
            "cannot restore as of {t}: restoring to a time between backups requires a backup taken WITH revision_history; \
             this chain can restore only to its end times: {}",
            ends.join(", ")
        )));
    }
    Ok(j + 1)
}

/// The catalog as of `t` from the first `layers` layers of a chain.
pub fn catalog_at(chain: &[Manifest], layers: usize, t: Timestamp) -> Catalog {
    let last = &chain[layers - 1];
    if t == last.end_time {
        return last.catalog();
    }
    // Inside a revision-history window: the state at its start, then its changes up to t.
    let mut catalog = if layers >= 2 { chain[layers - 2].catalog() } else { Catalog::default() };
    for r in last.descriptor_changes.iter().filter(|r| r.ts <= t) {
        match &r.descriptor {
            Some(d) => catalog.insert(d.clone()),
            None => {
                catalog.databases.remove(&r.id);
                catalog.tables.remove(&r.id);
            }
        }
    }
    catalog
}

enum Parent {
    /// A database restored alongside (its id in the backup).
    Restored(DescId),
    /// A database already in the target.
    Existing(DescId),
}

/// What a restore will bring back, checked against the target but not yet given ids:
/// [`RestoreSelection::ids_needed`] fresh ids turn it into a [`RestorePlan`].
pub struct RestoreSelection<'a> {
    chain: &'a [Manifest],
    layers: usize,
    as_of: Timestamp,
    dbs: Vec<(DatabaseDescriptor, String)>,
    tables: Vec<(TableDescriptor, Parent)>,
    restore_system: bool,
}

/// Chooses what to restore as of `as_of` (default: the chain's end) and checks it against the
/// target's catalog: a restorable time, names that already exist, a non-empty cluster, objects
/// missing from the backup. Pure; `chain` must be validated with [`validate_chain`].
pub fn prepare_restore<'a>(
    chain: &'a [Manifest],
    as_of: Option<Timestamp>,
    target: &Catalog,
    targets: &Targets,
    options: &RestoreOptions,
) -> Result<RestoreSelection<'a>> {
    let t = as_of.unwrap_or_else(|| chain[chain.len() - 1].end_time);
    let layers = layers_for(chain, t)?;
    let backup = catalog_at(chain, layers, t);
    let mut dbs: Vec<(&DatabaseDescriptor, String)> = Vec::new();
    let mut tables: Vec<(&TableDescriptor, Parent)> = Vec::new();
    let mut restore_system = false;
    match targets {
        Targets::Cluster => {
            if !chain[0].is_full_cluster {
                return Err(Error::Precondition(
                    "the backup is not a full cluster backup; use RESTORE DATABASE or RESTORE TABLE".into(),
                ));
            }
            if !target.has_no_user_objects() {
                return Err(Error::Precondition(
                    "full cluster restore can only be run on a cluster with no user-created databases or tables".into(),
                ));
            }
            restore_system = true;
            for db in backup.databases.values() {
                dbs.push((db, db.name.clone()));
            }
            for t in backup.tables.values() {
                tables.push((t, Parent::Restored(t.parent_id)));
            }
        }
        Targets::Databases(names) => {
            if options.new_db_name.is_some() && names.len() != 1 {
                return Err(Error::invalid("new_db_name", "can only be used when restoring a single database"));
            }
            for name in names {
                let db = backup.database(name).ok_or_else(|| Error::not_found("database in backup", name.clone()))?;
                let new_name = options.new_db_name.clone().unwrap_or_else(|| name.clone());
                if target.database(&new_name).is_some() {
                    return Err(Error::exists("database", new_name));
                }
                dbs.push((db, new_name));
                for t in backup.tables_in(db.id) {
                    tables.push((t, Parent::Restored(db.id)));
                }
            }
        }
        Targets::Tables(names) => {
            if options.new_db_name.is_some() {
                return Err(Error::invalid("new_db_name", "is only valid with RESTORE DATABASE"));
            }
            for name in names {
                let ids = expand_table_name(&backup, name).map_err(|e| match e {
                    Error::NotFound { what, name } => Error::NotFound { what: format!("{what} in backup"), name },
                    e => e,
                })?;
                for id in ids {
                    let t = &backup.tables[&id];
                    let db_name =
                        options.into_db.clone().unwrap_or_else(|| backup.database_name(t.parent_id).to_string());
                    let db = target.database(&db_name).ok_or_else(|| {
                        Error::Precondition(format!(
                            "a database named {db_name} needs to exist to restore table {}.{} (create it, or use WITH into_db)",
                            backup.database_name(t.parent_id),
                            t.name
                        ))
                    })?;
                    if target.tables_in(db.id).any(|x| x.name == t.name) {
                        return Err(Error::exists("table", format!("{db_name}.{}", t.name)));
                    }
                    if !tables.iter().any(|(x, _)| x.id == t.id) {
                        tables.push((t, Parent::Existing(db.id)));
                    }
                }
            }
        }
    }
    Ok(RestoreSelection {
        chain,
        layers,
        as_of: t,
        dbs: dbs.into_iter().map(|(d, n)| (d.clone(), n)).collect(),
        tables: tables.into_iter().map(|(t, p)| (t.clone(), p)).collect(),
        restore_system,
    })
}

impl RestoreSelection<'_> {
    /// How many fresh descriptor ids the restore needs.
    pub fn ids_needed(&self) -> u32 {
        (self.dbs.len() + self.tables.len()) as u32
    }

    /// The plan, giving the restored objects ids `first_id..first_id + ids_needed()`.
    pub fn plan(self, first_id: DescId) -> Result<RestorePlan> {
        let mut next = first_id;
        let mut db_map = BTreeMap::new();
        let mut plan = RestorePlan {
            as_of: self.as_of,
            layers: self.layers as u32,
            databases: Vec::new(),
            tables: Vec::new(),
            restore_system: self.restore_system,
            files: Vec::new(),
        };
        for (db, name) in self.dbs {
            db_map.insert(db.id, next);
            plan.databases.push(DatabaseRestore {
                old_id: db.id,
                descriptor: DatabaseDescriptor { id: next, name, version: 1, modification_time: self.as_of },
            });
            next += 1;
        }
        for (t, parent) in self.tables {
            let parent_id = match parent {
                Parent::Restored(old) => *db_map.get(&old).ok_or_else(|| {
                    Error::corrupt(MANIFEST_NAME, format!("table {} has no database in the backup", t.name))
                })?,
                Parent::Existing(id) => id,
            };
            plan.tables.push(TableRestore {
                old_id: t.id,
                descriptor: TableDescriptor { id: next, parent_id, version: 1, modification_time: self.as_of, ..t },
            });
            next += 1;
        }
        let needed = plan.source_spans();
        for (layer, m) in self.chain[..self.layers].iter().enumerate() {
            plan.files.extend(
                m.files
                    .iter()
                    .filter(|f| needed.spans().iter().any(|s| s.overlaps(&f.span)))
                    .map(|f| LayerFile { layer: layer as u32, file: f.clone() }),
            );
        }
        Ok(plan)
    }
}

/// How a restore runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreRunOptions {
    /// Spans (tables) restored at once.
    pub concurrency: usize,
    /// Bytes of key/value pairs per ingest call.
    pub batch_bytes: usize,
    /// Bytes of blocks one ranged read of a data file fetches at most (a larger block is
    /// fetched alone). A file being merged holds at most two such reads: the one being decoded,
    /// and the next, fetched meanwhile.
    pub read_bytes: u64,
    /// How the chain's files are stored: plain, or encrypted with its data key.
    pub codec: FileCodec,
    /// Where progress is reported.
    pub progress: crate::progress::ProgressReporter,
}

impl Default for RestoreRunOptions {
    fn default() -> Self {
        RestoreRunOptions {
            concurrency: 4,
            batch_bytes: 4 << 20,
            read_bytes: 4 << 20,
            codec: FileCodec::plain(),
            progress: Default::default(),
        }
    }
}

impl RestoreRunOptions {
    /// Sets where progress is reported.
    pub fn with_progress(mut self, progress: crate::progress::ProgressReporter) -> Self {
        self.progress = progress;
        self
    }
    /// Sets how the chain's files are stored (see [`crate::Chain::codec`]).
    pub fn with_codec(mut self, codec: FileCodec) -> Self {
        self.codec = codec;
        self
    }
    /// Sets how many spans (tables) are restored at once (at least 1).
    pub fn with_concurrency(mut self, spans: usize) -> Self {
        self.concurrency = spans.max(1);
        self
    }
    /// Sets the bytes of blocks one ranged read of a data file fetches at most.
    pub fn with_read_bytes(mut self, bytes: u64) -> Self {
        self.read_bytes = bytes;
        self
    }
    /// Sets the bytes of key/value pairs per ingest call. A span holds at most two batches: the
    /// one the sink is ingesting and the one being built.
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }
}

/// What a finished restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Rows written.
    pub rows: u64,
    /// Key and value bytes written.
    pub bytes: u64,
    /// Commit timestamp of the publish step.
    pub published_at: Timestamp,
}

/// Runs a restore plan: ingests the data, validates, and publishes the new descriptors at once.
/// `layers[i]` is the directory of layer `i` of the chain. On any failure everything ingested is
/// discarded and nothing becomes visible.
pub async fn run_restore(
    sink: &dyn KvSink,
    layers: &[Arc<dyn ExternalStorage>],
    plan: &RestorePlan,
    options: &RestoreRunOptions,
) -> Result<RestoreSummary> {
    if layers.len() < plan.layers as usize {
        return Err(Error::invalid(
            "restore",
            format!("the plan reads {} layers, {} given", plan.layers, layers.len()),
        ));
    }
    let spans = plan.target_spans();
    match ingest_and_publish(sink, layers, plan, options).await {
        Ok(summary) => Ok(summary),
        Err(e) => {
            // Best effort: the data is invisible without its descriptors either way.
            let _ = sink.discard(&spans).await;
            Err(e)
        }
    }
}

/// One span to restore: where it is in the backup, and its new table id (none: system span).
struct SpanJob {
    span: Span,
    new_id: Option<DescId>,
}

async fn ingest_and_publish(
    sink: &dyn KvSink,
    layers: &[Arc<dyn ExternalStorage>],
    plan: &RestorePlan,
    options: &RestoreRunOptions,
) -> Result<RestoreSummary> {
    let mut jobs: Vec<SpanJob> = plan
        .tables
        .iter()
        .map(|t| SpanJob { span: keys::table_span(t.old_id), new_id: Some(t.descriptor.id) })
        .collect();
    if plan.restore_system {
        jobs.push(SpanJob { span: keys::system_span(), new_id: None });
    }
    let total_bytes = plan.files.iter().map(|lf| lf.file.logical_bytes).sum();
    let counter = crate::progress::RestoreCounter::new(options.progress.clone(), total_bytes);
    // The first span to fail stops the others at their next batch; every span returns only
    // once its ingests are done, so the discard that follows a failure races none of them.
    let stop = AtomicBool::new(false);
    let results: Vec<Result<(u64, u64)>> = stream::iter(jobs.iter())
        .map(|job| async {
            if stop.load(Ordering::Relaxed) {
                return Ok((0, 0));
            }
            let result = restore_span(sink, layers, plan, job, options, &counter, &stop).await;
            if result.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            result
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut totals = Vec::with_capacity(results.len());
    let mut first_error = None;
    for result in results {
        match result {
            Ok(t) => totals.push(t),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    for t in &plan.tables {
        sink.validate_indexes(&t.descriptor).await?;
    }
    let changes = plan
        .databases
        .iter()
        .map(|d| DescriptorChange::Put(Descriptor::Database(d.descriptor.clone())))
        .chain(plan.tables.iter().map(|t| DescriptorChange::Put(Descriptor::Table(t.descriptor.clone()))))
        .collect();
    let published_at = sink.publish(changes).await?;
    counter.finish();
    Ok(RestoreSummary { rows: totals.iter().map(|t| t.0).sum(), bytes: totals.iter().map(|t| t.1).sum(), published_at })
}

/// Restores one span: merges the versions of every layer's files, newest first per key, takes
/// each key's newest version at or below the restore time, drops deletions, rewrites the keys
/// and ingests them in sorted batches.
///
/// The sink ingests one batch while the next is built: at most one batch is in flight, and the
/// next one waits for it before it is handed over, so a span holds at most two batches. The
/// batch in flight is polled as the next one grows (a sink that does its work elsewhere, like
/// the embedded store on tokio's blocking pool, needs only the first poll). When `stop` is set
/// (another span failed), the span ends at its next batch. The span never returns, failed or
/// not, while an ingest of its is in flight: a discard after a failure must not race one.
async fn restore_span(
    sink: &dyn KvSink,
    layers: &[Arc<dyn ExternalStorage>],
    plan: &RestorePlan,
    job: &SpanJob,
    options: &RestoreRunOptions,
    counter: &crate::progress::RestoreCounter,
    stop: &AtomicBool,
) -> Result<(u64, u64)> {
    let mut in_flight = None;
    let result = merge_and_ingest(sink, layers, plan, job, options, counter, stop, &mut in_flight).await;
    let last = finish_ingest(&mut in_flight, counter).await;
    let (rows, bytes) = result?;
    last?;
    Ok((rows, bytes))
}

/// What [`KvSink::ingest`] returns.
#[cfg(not(target_arch = "wasm32"))]
type IngestFuture<'a> = futures::future::BoxFuture<'a, Result<()>>;
/// What [`KvSink::ingest`] returns.
#[cfg(target_arch = "wasm32")]
type IngestFuture<'a> = futures::future::LocalBoxFuture<'a, Result<()>>;

/// A batch the sink is ingesting, and what it counts for progress once done.
struct Ingest<'a> {
    future: IngestFuture<'a>,
    rows: u64,
    bytes: u64,
}

/// Polls the batch in flight once, without waiting; when it is done, counts it and clears it.
async fn poll_ingest(in_flight: &mut Option<Ingest<'_>>, counter: &crate::progress::RestoreCounter) -> Result<()> {
    if let Some(ingest) = in_flight {
        if let Poll::Ready(result) = futures::poll!(&mut ingest.future) {
            let (rows, bytes) = (ingest.rows, ingest.bytes);
            *in_flight = None;
            result?;
            counter.add(rows, bytes);
        }
    }
    Ok(())
}

/// Waits for the batch in flight, if any, and counts it.
async fn finish_ingest(in_flight: &mut Option<Ingest<'_>>, counter: &crate::progress::RestoreCounter) -> Result<()> {
    if let Some(ingest) = in_flight.take() {
        ingest.future.await?;
        counter.add(ingest.rows, ingest.bytes);
    }
    Ok(())
}

/// How many entries [`restore_span`] merges between two polls of the batch in flight.
const ENTRIES_PER_POLL: usize = 1024;

/// The body of [`restore_span`]; leaves the last batch it handed over in `in_flight`.
#[allow(clippy::too_many_arguments)]
async fn merge_and_ingest<'s>(
    sink: &'s dyn KvSink,
    layers: &[Arc<dyn ExternalStorage>],
    plan: &RestorePlan,
    job: &SpanJob,
    options: &RestoreRunOptions,
    counter: &crate::progress::RestoreCounter,
    stop: &AtomicBool,
    in_flight: &mut Option<Ingest<'s>>,
) -> Result<(u64, u64)> {
    let files: Vec<(&LayerFile, Span)> = plan
        .files
        .iter()
        .filter(|lf| lf.file.span.overlaps(&job.span))
        .map(|lf| (lf, job.span.intersect(&lf.file.span)))
        .collect();
    let storages = files
        .iter()
        .map(|(lf, _)| crate::locality::storage_for_file(&layers[lf.layer as usize], &lf.file))
        .collect::<Result<Vec<_>>>()?;
    // A min-heap of each file's next key, ordered by key ascending, then newest first; the
    // entries themselves wait in `heads`. A file is read only when the merge reaches the start
    // of its part of the span (its placeholder, newest of all at that key, comes first), and
    // let go once read to its end: the files of one layer hold disjoint spans, so a span holds
    // about one file per layer at a time however many files it has.
    let mut heap = BinaryHeap::new();
    let mut cursors: Vec<Slot> = Vec::with_capacity(files.len());
    let mut heads: Vec<Option<Entry>> = Vec::with_capacity(files.len());
    for (i, (_, span)) in files.iter().enumerate() {
        heap.push(Reverse((Bytes::copy_from_slice(&span.start), Reverse(Timestamp::MAX), i)));
        cursors.push(Slot::Unread);
        heads.push(None);
    }
    let mut decided: Option<Bytes> = None;
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut merged = 0usize;
    // The file whose head comes next. A file's next entry that still comes before every entry in
    // the heap is taken without going through it (the common case: files of one layer do not
    // interleave).
    let mut next = heap.pop().map(|Reverse((_, _, i))| i);
    while let Some(i) = next {
        let cursor = match &mut cursors[i] {
            Slot::Open(cursor) => cursor,
            Slot::Unread => {
                // The merge reached this file's part of the span.
                let (lf, span) = &files[i];
                let mut cursor =
                    FileCursor::open(storages[i].as_ref(), &lf.file, span.clone(), &options.codec, options.read_bytes)
                        .await?;
                match cursor.next().await? {
                    Some(head) => {
                        heap.push(Reverse((head.key.clone(), Reverse(head.ts), i)));
                        heads[i] = Some(head);
                        cursors[i] = Slot::Open(Box::new(cursor));
                    }
                    None => cursors[i] = Slot::Done,
                }
                next = heap.pop().map(|Reverse((_, _, i))| i);
                continue;
            }
            Slot::Done => unreachable!("a file read to its end has no entry in the heap"),
        };
        let e = heads[i].take().expect("the next file has its head");
        next = match cursor.next().await? {
            Some(n) => {
                let first = heap.peek().is_none_or(|Reverse((key, Reverse(ts), j))| {
                    (&n.key[..], Reverse(n.ts), i) < (&key[..], Reverse(*ts), *j)
                });
                if !first {
                    heap.push(Reverse((n.key.clone(), Reverse(n.ts), i)));
                }
                heads[i] = Some(n);
                if first {
                    Some(i)
                } else {
                    heap.pop().map(|Reverse((_, _, i))| i)
                }
            }
            None => {
                cursors[i] = Slot::Done;
                heap.pop().map(|Reverse((_, _, i))| i)
            }
        };
        merged += 1;
        if merged.is_multiple_of(ENTRIES_PER_POLL) {
            poll_ingest(in_flight, counter).await?;
            for slot in &mut cursors {
                if let Slot::Open(cursor) = slot {
                    cursor.poll_fetch().await;
                }
            }
        }
        let Entry { key: old_key, ts, value } = e;
        if ts > plan.as_of || decided.as_ref() == Some(&old_key) {
            continue;
        }
        let Some(value) = value else {
            decided = Some(old_key);
            continue;
        };
        let mut key = old_key.to_vec();
        decided = Some(old_key);
        let value = match job.new_id {
            Some(new_id) => {
                keys::rewrite_table_key(&mut key, new_id);
                value.to_vec()
            }
            None if is_restorable_system_key(&key) => {
                match crate::exec_schedule::restored_system_value(&key, value.to_vec()) {
                    Some(v) => v,
                    None => continue,
                }
            }
            None => continue,
        };
        rows += 1;
        bytes += (key.len() + value.len()) as u64;
        batch_bytes += key.len() + value.len();
        batch.push((key, value));
        if batch_bytes >= options.batch_bytes {
            finish_ingest(in_flight, counter).await?;
            if stop.load(Ordering::Relaxed) {
                return Ok((rows, bytes));
            }
            let n = batch.len() as u64;
            let future = sink.ingest(std::mem::take(&mut batch));
            *in_flight = Some(Ingest { future, rows: n, bytes: batch_bytes as u64 });
            // The first poll starts it.
            poll_ingest(in_flight, counter).await?;
            batch_bytes = 0;
        }
    }
    finish_ingest(in_flight, counter).await?;
    if !batch.is_empty() {
        let n = batch.len() as u64;
        sink.ingest(batch).await?;
        counter.add(n, batch_bytes as u64);
    }
    Ok((rows, bytes))
}

/// A file of a span being merged.
enum Slot<'s> {
    /// Not read yet: its placeholder is in the heap.
    Unread,
    Open(Box<FileCursor<'s>>),
    /// Read to its end and let go.
    Done,
}

/// System keys a full-cluster restore carries over: everything but descriptors (rewritten and
/// published separately) and the id counter (the target's own).
fn is_restorable_system_key(key: &[u8]) -> bool {
    keys::system_span().contains(key) && !keys::descriptor_span().contains(key) && key != keys::ID_COUNTER_KEY
}

/// What [`FileReader::read_range`] returns, boxed to be kept while the cursor decodes.
#[cfg(not(target_arch = "wasm32"))]
type ReadFuture<'s> = futures::future::BoxFuture<'s, Result<Bytes>>;
/// What [`FileReader::read_range`] returns, boxed to be kept while the cursor decodes.
#[cfg(target_arch = "wasm32")]
type ReadFuture<'s> = futures::future::LocalBoxFuture<'s, Result<Bytes>>;

/// Consecutive wanted blocks of a data file, fetched with one ranged read.
struct BlockRun {
    /// Their bytes in the file's contents.
    range: Range<u64>,
    /// `(index in the file, handle)` of each.
    blocks: Vec<(usize, BlockHandle)>,
}

/// Reads one data file's entries within a span: the blocks that may hold its keys, fetched in
/// runs of up to [`RestoreRunOptions::read_bytes`], the next run while this one is decoded.
///
/// When the span covers the whole file and the file is not encrypted, the cursor fetches every
/// block in file order and checks the SHA-256 of all of it against the manifest when the last run
/// arrives, before its entries are returned. Otherwise each block's checksum (and, encrypted,
/// each chunk's authentication tag, which binds its index and the file's path) is what vouches
/// for it, as for a ranged read of one table's blocks. A restore that finds a mismatch fails,
/// and its ingested data is discarded.
struct FileCursor<'s> {
    path: String,
    span: Span,
    reader: Arc<FileReader<'s>>,
    /// Runs not fetched yet, in file order.
    runs: VecDeque<BlockRun>,
    /// The next run, being fetched.
    fetch: Option<(BlockRun, MaybeDone<ReadFuture<'s>>)>,
    /// Fetched blocks, not decoded yet.
    blocks: VecDeque<(usize, BlockHandle, Bytes)>,
    current: VecDeque<Entry>,
    /// For a whole plain file: the hash of the bytes fetched so far, the index and footer (the
    /// file's last bytes, fetched first) and the SHA-256 the manifest names.
    check: Option<(Sha256, Bytes, [u8; 32])>,
}

impl<'s> FileCursor<'s> {
    /// Reads the footer and the index of `file` (stored in `storage`) and starts fetching the
    /// first run of the blocks that may hold keys of `span`. Encrypted files are read with
    /// `codec`, only the chunks covering the wanted bytes.
    async fn open(
        storage: &'s dyn ExternalStorage,
        file: &FileInfo,
        span: Span,
        codec: &FileCodec,
        read_bytes: u64,
    ) -> Result<FileCursor<'s>> {
        let path = format!("{}/{}", storage.describe(), file.path);
        let size = storage.size(&file.path).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::corrupt(&path, "data file named by the manifest is missing"),
            e => e,
        })?;
        if size != file.size {
            return Err(Error::corrupt(&path, format!("size is {size} bytes, the manifest says {}", file.size)));
        }
        let reader = Arc::new(codec.reader(storage, &file.path, size, &path).await?);
        let size = reader.plain_size();
        if size < FOOTER_LEN {
            return Err(Error::corrupt(&path, "file is too short to hold a data file footer"));
        }
        let footer_bytes = reader.read_range(size - FOOTER_LEN..size).await?;
        let footer = decode_footer(&footer_bytes, size, &path)?;
        let index_bytes = reader.read_range(footer.index_offset..footer.index_offset + footer.index_len as u64).await?;
        let index = decode_index(&index_bytes, &footer, &path)?;
        let whole = span.start <= file.span.start && file.span.end <= span.end;
        let check = if whole && !codec.is_encrypted() {
            // Every block, in file order, and then the index and the footer: the whole file, if
            // the blocks tile it up to the index, as the writer lays them out.
            let mut at = 0;
            for h in &index {
                if h.offset != at {
                    return Err(Error::corrupt(&path, format!("a block starts at byte {}, expected {at}", h.offset)));
                }
                at += h.len as u64;
            }
            if at != footer.index_offset {
                return Err(Error::corrupt(
                    &path,
                    format!("the blocks end at byte {at}, the index starts at {}", footer.index_offset),
                ));
            }
            Some((Sha256::new(), Bytes::from([index_bytes, footer_bytes].concat()), file.sha256))
        } else {
            None
        };
        let mut runs: VecDeque<BlockRun> = VecDeque::new();
        for (i, h) in index.into_iter().enumerate().filter(|(_, h)| whole || h.overlaps(&span)) {
            let range = h.range();
            match runs.back_mut() {
                Some(run) if run.range.end == range.start && range.end - run.range.start <= read_bytes => {
                    run.range.end = range.end;
                    run.blocks.push((i, h));
                }
                _ => runs.push_back(BlockRun { range, blocks: vec![(i, h)] }),
            }
        }
        let mut cursor = FileCursor {
            path,
            span,
            reader,
            runs,
            fetch: None,
            blocks: VecDeque::new(),
            current: VecDeque::new(),
            check,
        };
        cursor.fetch_next_run().await;
        Ok(cursor)
    }

    /// Starts fetching the next run, if any: the first poll starts the read.
    async fn fetch_next_run(&mut self) {
        let Some(run) = self.runs.pop_front() else { return };
        let reader = self.reader.clone();
        let range = run.range.clone();
        let read: ReadFuture<'s> = Box::pin(async move { reader.read_range(range).await });
        self.fetch = Some((run, maybe_done(read)));
        self.poll_fetch().await;
    }

    /// Polls the run being fetched once, without waiting.
    async fn poll_fetch(&mut self) {
        if let Some((_, fetch)) = &mut self.fetch {
            stage::start(Pin::new(fetch)).await;
        }
    }

    /// The next entry inside the span, decoding the next block, and waiting for the next run,
    /// when needed.
    async fn next(&mut self) -> Result<Option<Entry>> {
        loop {
            while let Some(e) = self.current.pop_front() {
                if self.span.contains(&e.key) {
                    return Ok(Some(e));
                }
            }
            if let Some((i, handle, data)) = self.blocks.pop_front() {
                let current = &mut self.current;
                decode_block(&data, &handle, i, &self.path, |e| current.push_back(e))?;
                continue;
            }
            let Some((run, mut fetch)) = self.fetch.take() else { return Ok(None) };
            let data = stage::output(Pin::new(&mut fetch)).await?;
            if data.len() as u64 != run.range.end - run.range.start {
                return Err(Error::corrupt(
                    &self.path,
                    format!("a read of bytes {:?} returned {} bytes", run.range, data.len()),
                ));
            }
            if let Some((hash, _, _)) = &mut self.check {
                hash.update(&data);
            }
            for (i, h) in run.blocks {
                let r = (h.offset - run.range.start) as usize..(h.offset - run.range.start + h.len as u64) as usize;
                self.blocks.push_back((i, h, data.slice(r)));
            }
            self.fetch_next_run().await;
            if self.fetch.is_none() {
                if let Some((mut hash, tail, expected)) = self.check.take() {
                    hash.update(&tail);
                    if <[u8; 32]>::from(hash.finalize()) != expected {
                        return Err(Error::corrupt(&self.path, "SHA-256 does not match the manifest"));
                    }
                }
            }
        }
    }
}
