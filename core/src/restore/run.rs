//! Running a restore plan: merge the layers' files newest-first per key (honouring deletions),
//! reading only the blocks that hold the restored spans, ingest sorted batches, and publish
//! everything in one step at the end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Poll;

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use crate::batch::IngestBatch;
use crate::catalog::{DescId, Descriptor, DescriptorChange};
use crate::chain::Chain;
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::keys;
use crate::kv::{Entry, KvSink};
use crate::locality::Locations;
use crate::progress::{Cancel, ProgressReporter, RestoreCounter};
use crate::records::restored_system_value;
use crate::restore::plan::{LayerFile, RestorePlan};
use crate::restore::read::FileCursor;
use crate::span::Span;
use crate::timestamp::Timestamp;

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
    /// How the chain's files are stored: taken from the chain a restore runs on.
    pub(crate) codec: FileCodec,
    /// Where progress is reported.
    pub progress: ProgressReporter,
    /// Stops the restore (before its next batch or file read) once canceled.
    pub cancel: Cancel,
}

impl Default for RestoreRunOptions {
    fn default() -> Self {
        RestoreRunOptions {
            concurrency: 4,
            batch_bytes: 4 << 20,
            read_bytes: 4 << 20,
            codec: FileCodec::plain(),
            progress: Default::default(),
            cancel: Default::default(),
        }
    }
}

impl RestoreRunOptions {
    /// Sets where progress is reported.
    pub fn with_progress(mut self, progress: ProgressReporter) -> Self {
        self.progress = progress;
        self
    }
    /// Sets the signal that cancels the restore.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
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

/// Runs a restore plan on `chain` (whose layers it names): ingests the data, validates, and
/// publishes the new descriptors at once. On any failure everything ingested is discarded and
/// nothing becomes visible.
///
/// The system span of a full-cluster restore (jobs, schedules, settings: small) is not ingested:
/// its rows are kept in memory and published with the descriptors
/// ([`DescriptorChange::SystemRow`]), so a restore that fails changes none of the target's own.
pub async fn run_restore(
    sink: &dyn KvSink,
    chain: &Chain,
    plan: &RestorePlan,
    options: &RestoreRunOptions,
) -> Result<RestoreSummary> {
    let dirs = plan
        .layers
        .iter()
        .map(|name| {
            chain.layer(name).map(|l| l.dir.clone()).ok_or_else(|| {
                Error::invalid("restore", format!("the plan reads layer {name}, which the chain does not have"))
            })
        })
        .collect::<Result<Vec<Locations>>>()?;
    if let Some(lf) = plan.files.iter().find(|lf| lf.layer as usize >= dirs.len()) {
        return Err(Error::invalid(
            "restore",
            format!("the plan reads {} from layer {}, but names only {} layers", lf.file.path, lf.layer, dirs.len()),
        ));
    }
    let mut options = options.clone();
    options.codec = chain.codec.clone();
    let spans = plan.target_spans();
    // A restore killed from here on leaves its ingests in these spans: the sink may record them,
    // to discard what no publish claimed when it opens again.
    if !spans.is_empty() {
        sink.prepare_ingest(&spans).await?;
    }
    match ingest_and_publish(sink, &dirs, plan, &options).await {
        Ok(summary) => Ok(summary),
        Err(e) => {
            // Best effort: the data is invisible without its descriptors either way.
            let _ = sink.discard(&spans).await;
            Err(e)
        }
    }
}

/// One span to restore: where it is in the backup, and its new table id (none: system span).
struct SpanToRestore {
    span: Span,
    new_id: Option<DescId>,
}

async fn ingest_and_publish(
    sink: &dyn KvSink,
    dirs: &[Locations],
    plan: &RestorePlan,
    options: &RestoreRunOptions,
) -> Result<RestoreSummary> {
    let mut spans: Vec<SpanToRestore> = plan
        .tables
        .iter()
        .map(|t| SpanToRestore { span: keys::table_span(t.old_id), new_id: Some(t.descriptor.id) })
        .collect();
    if plan.restore_system {
        spans.push(SpanToRestore { span: keys::system_span(), new_id: None });
    }
    let total_bytes = plan.files.iter().map(|lf| lf.file.logical_bytes).sum();
    let counter = RestoreCounter::new(options.progress.clone(), options.cancel.clone(), total_bytes);
    // The first span to fail stops the others at their next batch; every span returns only
    // once its ingests are done, so the discard that follows a failure races none of them.
    let stop = AtomicBool::new(false);
    let system_rows = Mutex::new(Vec::new());
    let results: Vec<Result<(u64, u64)>> = stream::iter(spans.iter())
        .map(|target| async {
            if stop.load(Ordering::Relaxed) {
                return Ok((0, 0));
            }
            let result = restore_span(sink, dirs, plan, target, options, &counter, &stop, &system_rows).await;
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
        .chain(
            system_rows
                .into_inner()
                .expect("system rows lock")
                .into_iter()
                .map(|(key, value)| DescriptorChange::SystemRow { key, value }),
        )
        .collect();
    counter.check()?;
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
/// the embedded store on its own writer threads, needs only the first poll). When `stop` is set
/// (another span failed), the span ends at its next batch. The span never returns, failed or
/// not, while an ingest of its is in flight: a discard after a failure must not race one.
///
/// The system span (no new id) is not ingested: its rows go to `system_rows`, for the publish.
#[allow(clippy::too_many_arguments)]
async fn restore_span(
    sink: &dyn KvSink,
    dirs: &[Locations],
    plan: &RestorePlan,
    target: &SpanToRestore,
    options: &RestoreRunOptions,
    counter: &RestoreCounter,
    stop: &AtomicBool,
    system_rows: &Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
) -> Result<(u64, u64)> {
    let mut in_flight = None;
    let result = merge_and_ingest(sink, dirs, plan, target, options, counter, stop, system_rows, &mut in_flight).await;
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
async fn poll_ingest(in_flight: &mut Option<Ingest<'_>>, counter: &RestoreCounter) -> Result<()> {
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
async fn finish_ingest(in_flight: &mut Option<Ingest<'_>>, counter: &RestoreCounter) -> Result<()> {
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
    dirs: &[Locations],
    plan: &RestorePlan,
    target: &SpanToRestore,
    options: &RestoreRunOptions,
    counter: &RestoreCounter,
    stop: &AtomicBool,
    system_rows: &Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    in_flight: &mut Option<Ingest<'s>>,
) -> Result<(u64, u64)> {
    let files: Vec<(&LayerFile, Span)> = plan
        .files
        .iter()
        .filter(|lf| lf.file.span.overlaps(&target.span))
        .map(|lf| (lf, target.span.intersect(&lf.file.span)))
        .collect();
    let storages =
        files.iter().map(|(lf, _)| dirs[lf.layer as usize].for_file(&lf.file)).collect::<Result<Vec<_>>>()?;
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
    let mut batch = IngestBatch::new();
    let mut key = Vec::new();
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
                let mut cursor = FileCursor::open(
                    storages[i].as_ref(),
                    &lf.file,
                    span.clone(),
                    &options.codec,
                    options.read_bytes,
                    counter,
                )
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
        let Some(new_id) = target.new_id else {
            decided = Some(old_key.clone());
            if !is_restorable_system_key(&old_key) {
                continue;
            }
            let Some(value) = restored_system_value(&old_key, value.to_vec()) else {
                continue;
            };
            rows += 1;
            bytes += (old_key.len() + value.len()) as u64;
            counter.add(1, (old_key.len() + value.len()) as u64);
            system_rows.lock().expect("system rows lock").push((old_key.to_vec(), value));
            continue;
        };
        // The key under its new table id, built in a buffer kept across rows; the batch copies
        // it and the value once, into its own buffer.
        key.clear();
        key.extend_from_slice(&old_key);
        keys::rewrite_table_key(&mut key, new_id);
        decided = Some(old_key);
        rows += 1;
        bytes += (key.len() + value.len()) as u64;
        batch.push(&key, &value);
        if batch.bytes() >= options.batch_bytes {
            finish_ingest(in_flight, counter).await?;
            counter.check()?;
            if stop.load(Ordering::Relaxed) {
                return Ok((rows, bytes));
            }
            let (n, batch_bytes) = (batch.len(), batch.bytes());
            // The next batch has room for as many pairs as this one and a little more than the
            // batch size: no reallocation while it fills.
            let next = IngestBatch::with_capacity(n, options.batch_bytes.saturating_add(options.batch_bytes / 8));
            let full = std::mem::replace(&mut batch, next);
            let (n, batch_bytes) = (n as u64, batch_bytes as u64);
            let future = sink.ingest(full);
            *in_flight = Some(Ingest { future, rows: n, bytes: batch_bytes });
            // The first poll starts it.
            poll_ingest(in_flight, counter).await?;
        }
    }
    finish_ingest(in_flight, counter).await?;
    if !batch.is_empty() {
        counter.check()?;
        let (n, batch_bytes) = (batch.len() as u64, batch.bytes() as u64);
        sink.ingest(batch).await?;
        counter.add(n, batch_bytes);
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
