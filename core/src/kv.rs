//! The traits a key-value engine implements to be backed up ([`KvSource`]) and restored into
//! ([`KvSink`]), and the values they exchange.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::batch::IngestBatch;
use crate::catalog::{Catalog, DescId, Descriptor, DescriptorChange, TableDescriptor};
use crate::error::Result;
use crate::keys;
use crate::span::Span;
use crate::timestamp::Timestamp;

/// `Send + Sync` natively; nothing on wasm32, where JavaScript objects are neither.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` natively; nothing on wasm32, where JavaScript objects are neither.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// One MVCC version: a key's value (or deletion) written at a timestamp.
///
/// Key and value are [`Bytes`], so a source can hand out a whole page of versions backed by one
/// buffer ([`PageBuilder`]) instead of two allocations per version; `Bytes::from(vec)`
/// wraps an owned `Vec` without copying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The full key (table prefix included).
    pub key: Bytes,
    /// When this version was written.
    pub ts: Timestamp,
    /// The value, or `None` for a deletion (tombstone).
    pub value: Option<Bytes>,
}

impl Entry {
    /// A version from owned or borrowed bytes.
    pub fn new(key: impl Into<Bytes>, ts: Timestamp, value: Option<impl Into<Bytes>>) -> Entry {
        Entry { key: key.into(), ts, value: value.map(Into::into) }
    }

    /// Its key and value bytes: what a page's `target_bytes` and a backup's logical sizes count.
    pub fn bytes(&self) -> u64 {
        (self.key.len() + self.value.as_ref().map_or(0, |v| v.len())) as u64
    }
}

/// Which versions a scan returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MvccFilter {
    /// For each key, only its newest version in the time window.
    Latest,
    /// Every version in the time window (revision history).
    AllRevisions,
}

/// A request for one page of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    /// The keys to read. On later pages, `span.start` is the previous page's `resume_key`.
    pub span: Span,
    /// Exclusive lower bound of the time window: versions at or below it are not returned.
    pub start: Timestamp,
    /// Inclusive upper bound of the time window.
    pub end: Timestamp,
    /// Which versions to return.
    pub filter: MvccFilter,
    /// Stop after about this many bytes of keys and values (at a key boundary). Must be > 0.
    pub target_bytes: u64,
}

impl ScanRequest {
    /// A scan of `span` for versions in `(start, end]`, in pages of about 1 MiB.
    pub fn new(span: Span, start: Timestamp, end: Timestamp, filter: MvccFilter) -> Self {
        ScanRequest { span, start, end, filter, target_bytes: 1 << 20 }
    }
}

/// One page of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Versions sorted by key ascending, then timestamp descending (newest first).
    pub entries: Vec<Entry>,
    /// Where the next page starts, or `None` when the span is exhausted.
    pub resume_key: Option<Vec<u8>>,
}

/// Builds a [`ScanPage`] whose keys and values live in one shared buffer: a source appends each
/// version's bytes instead of allocating two `Vec`s per version, and the page's entries are
/// slices of that buffer (no copy, no per-entry allocation).
#[derive(Debug, Default)]
pub struct PageBuilder {
    buf: Vec<u8>,
    /// Per version: where its key starts, where its key ends (= where its value starts), its
    /// timestamp, and where its value ends (`None` for a tombstone).
    index: Vec<(usize, usize, Timestamp, Option<usize>)>,
}

impl PageBuilder {
    /// A builder with room for about `bytes` of keys and values.
    pub fn with_capacity(bytes: usize) -> PageBuilder {
        PageBuilder { buf: Vec::with_capacity(bytes), index: Vec::new() }
    }

    /// Appends a version; versions must come in [`ScanPage`] order.
    pub fn push(&mut self, key: &[u8], ts: Timestamp, value: Option<&[u8]>) {
        let start = self.buf.len();
        self.buf.extend_from_slice(key);
        let key_end = self.buf.len();
        let value_end = value.map(|v| {
            self.buf.extend_from_slice(v);
            self.buf.len()
        });
        self.index.push((start, key_end, ts, value_end));
    }

    /// Versions appended so far.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Key and value bytes appended so far.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The key of the last version appended.
    pub fn last_key(&self) -> Option<&[u8]> {
        self.index.last().map(|&(start, end, _, _)| &self.buf[start..end])
    }

    /// The page, ending with `resume_key`.
    pub fn finish(self, resume_key: Option<Vec<u8>>) -> ScanPage {
        let buf = Bytes::from(self.buf);
        let entries = self
            .index
            .into_iter()
            .map(|(start, key_end, ts, value_end)| Entry {
                key: buf.slice(start..key_end),
                ts,
                value: value_end.map(|end| buf.slice(key_end..end)),
            })
            .collect();
        ScanPage { entries, resume_key }
    }
}

/// A unit of backup work: a span, and where its data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkUnit {
    /// The keys of this unit.
    pub span: Span,
    /// The locality of the node holding the data (e.g. `region=us-west`), if known.
    pub locality: Option<String>,
}

/// What a backup reads: a versioned key-value engine.
///
/// Implement it with [`macro@crate::async_trait`] (re-exported by this crate); on wasm32 the
/// traits drop `Send`, so write both forms:
///
/// ```ignore
/// #[cfg_attr(not(target_arch = "wasm32"), strata_core::async_trait)]
/// #[cfg_attr(target_arch = "wasm32", strata_core::async_trait(?Send))]
/// impl KvSource for MyEngine { /* … */ }
/// ```
///
/// # Contract
/// This is exactly what the conformance suite (`strata_core::conformance::kv`, feature
/// `conformance`; one `#[test]` per check with `kv_conformance_tests!`) checks.
///
/// - **Time.** Timestamps come from the engine's own clock. [`KvSource::now`] is never
///   [`Timestamp::ZERO`] (the suite tells versions apart by the `now()` readings around the
///   operation that wrote them), is at or above every committed write (of
///   [`KvStore::write`], [`KvSink::ingest`], [`KvSink::publish`], [`KvSink::allocate_ids`]),
///   never goes backwards, and every later write gets a timestamp strictly above it: a read at
///   `now()` is stable (`now_is_stable`).
/// - **Scans.** [`KvSource::scan`] returns the versions with `start < ts <= end` of the keys in
///   `[span.start, span.end)`, keys compared as raw bytes (strata keys contain `0x00` and prefix
///   each other; see [`crate::keys`]), sorted by key ascending and, within a key, newest first.
///   Tombstones are returned as `value: None`; an empty value is a value. With
///   [`MvccFilter::Latest`] only each key's newest version in the window is returned
///   (`scan_latest_and_revisions`, `scan_span_bounds`). `start >= end` returns nothing.
/// - **Pages** are exactly [`crate::MemKv`]'s, since callers may compare them: add the versions
///   of one key after another, and stop after the first key at which the page's bytes (key plus
///   value lengths of every version returned) reach `target_bytes`; all versions of one key are
///   in one page. `resume_key` is then the next *stored* key in the span after the page's last
///   key (even one with no version in the window), or `None` when there is none. An empty page
///   with `resume_key: None` ends the scan (`paging`).
/// - **GC.** [`KvSource::gc_threshold`] reports the oldest readable time, and is raised, never
///   lowered. A scan that needs data below it must fail with [`crate::Error::InvalidTime`]
///   naming the threshold, never return a silently incomplete answer: call
///   [`check_gc_threshold`] at the top of `scan` (and of `scan_changes`), which is what the
///   suite's `gc_threshold` check expects. (No trait method collects garbage; the suite's GC
///   checks take a closure that does.)
/// - **Descriptors** live as versioned entries in [`keys::descriptor_span`], encoded by
///   [`Descriptor::encode`]; the default [`KvSource::catalog_at`] reads them there.
/// - **Concurrency.** Every method may be called concurrently with every other, including
///   writes, ingests and id allocations racing each other (`concurrent_writes`). A method may
///   block its thread briefly (a synchronous embedded engine), but long waits should yield:
///   strata drives several calls at once from one task.
/// - **Errors** say what failed and where, and whether retrying can help
///   ([`crate::Error::status`]; build engine errors with [`crate::Error::kv`]).
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait KvSource: MaybeSendSync {
    /// The engine's current timestamp.
    async fn now(&self) -> Result<Timestamp>;

    /// One page of versions; see the trait's contract.
    async fn scan(&self, request: ScanRequest) -> Result<ScanPage>;

    /// The oldest timestamp at which `span` can still be read in full.
    async fn gc_threshold(&self, _span: &Span) -> Result<Timestamp> {
        Ok(Timestamp::ZERO)
    }

    /// Splits a span into units of work that can be exported in parallel, each with the locality
    /// of the node holding it. The default is the whole span, locality unknown.
    async fn split(&self, span: &Span) -> Result<Vec<WorkUnit>> {
        Ok(vec![WorkUnit { span: span.clone(), locality: None }])
    }

    /// About how many bytes of keys and stored values `span` holds (every version), for progress
    /// only: a backup weighs its work units by it, so its `fraction` follows the bytes it has
    /// exported rather than the count of units done. Cheap (no scan) or `Ok(None)`, the
    /// default: unknown, and units weigh the same. Never checked against what a scan returns.
    async fn estimate_bytes(&self, _span: &Span) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Optional fast path for incremental backups: the same page [`KvSource::scan`] returns for a
    /// request with `start > ZERO`, computed from an index of changes so that its cost follows
    /// what changed in `(start, end]`, not what exists. `Ok(None)` means the source keeps no such
    /// index, and the caller falls back to `scan` (a time-filtered full scan).
    async fn scan_changes(&self, _request: ScanRequest) -> Result<Option<ScanPage>> {
        Ok(None)
    }

    /// The catalog as of `ts`.
    async fn catalog_at(&self, ts: Timestamp) -> Result<Catalog> {
        let mut catalog = Catalog::default();
        let mut request = ScanRequest::new(keys::descriptor_span(), Timestamp::ZERO, ts, MvccFilter::Latest);
        loop {
            let page = self.scan(request.clone()).await?;
            for e in page.entries {
                if let Some(v) = e.value {
                    catalog.insert(Descriptor::decode(&v)?);
                }
            }
            match page.resume_key {
                Some(k) => request.span.start = k,
                None => return Ok(catalog),
            }
        }
    }
}

/// What a restore writes into: a key-value engine that can take bulk ingestion and publish new
/// descriptors atomically. A sink is readable too (a [`KvSource`]): restore reads its catalog,
/// and the conformance suite reads back what was written.
///
/// # Contract
/// This is exactly what the conformance suite checks (see [`KvSource`]'s contract for time,
/// scans, concurrency and errors, which apply here too).
///
/// - [`KvSink::allocate_ids`] reads the newest stored counter at [`keys::ID_COUNTER_KEY`] (a
///   big-endian `u32`), or [`crate::catalog::FIRST_USER_ID`] when it is missing or deleted, writes
///   `counter + count` there as a new version (even for `count == 0`), and returns the old
///   counter, atomically: concurrent calls hand out disjoint ranges (`id_allocation`).
/// - [`KvSink::ingest`] writes the batch's pairs (sorted by key, no key twice, in spans of descriptors not yet
///   published, never in the system span) as one batch at one timestamp of the sink's choosing,
///   above every earlier write and at or below the next `now()`. The versions are ordinary
///   versions — scans return them right away; they are "invisible" to users only because no
///   published descriptor owns their span yet. Calls may come concurrently for disjoint spans
///   (`ingest`, `concurrent_writes`).
/// - [`KvSink::prepare_ingest`] succeeds on the spans a restore names, before its ingests and
///   publish, which then behave as below (`publish_is_atomic_and_visible`).
/// - [`KvSink::publish`] applies all changes as one atomic write of their
///   [`DescriptorChange::into_write`] forms (the descriptor keys, encodings and tombstones) and
///   returns its commit timestamp: every restored object appears at once, or none does
///   (`publish_is_atomic_and_visible`, `catalog_at_history`).
/// - [`KvSink::discard`] removes every version of every key in the spans — whatever wrote them,
///   the system span included if a span covers it — and nothing outside them. It must succeed
///   on spans that hold nothing, on empty spans, on no spans, and again (`discard`).
/// - **Durability** (not checked by the suite, which cannot crash your engine): when a method
///   returns `Ok`, what it wrote survives a crash of the process if the engine is persistent
///   (strata records a restore as done only after `publish` returns); an in-memory engine has
///   nothing to promise.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait KvSink: KvSource {
    /// The current, committed catalog of the sink. The default reads it at [`KvSource::now`].
    async fn catalog(&self) -> Result<Catalog> {
        let now = self.now().await?;
        self.catalog_at(now).await
    }

    /// Reserves `count` fresh descriptor ids; returns the first.
    async fn allocate_ids(&self, count: u32) -> Result<DescId>;

    /// Called by a restore once, before its first ingest, with the spans it will ingest into
    /// (the new tables' spans, whose descriptors its publish writes).
    ///
    /// An engine whose ingests survive a crash may record the spans durably, drop a span's record
    /// when [`KvSink::publish`] writes a table descriptor owning the span (in the same atomic
    /// write) or [`KvSink::discard`] removes the span, and, when it opens while no restore can be
    /// running (an engine one process opens at a time), discard the spans still recorded that no
    /// descriptor owns: what a restore killed before its publish ingested. Both embedded stores
    /// do. The default records nothing: what a killed restore ingested then stays, invisible
    /// (no descriptor owns its spans), until something discards those spans.
    async fn prepare_ingest(&self, _spans: &[Span]) -> Result<()> {
        Ok(())
    }

    /// Writes sorted key/value pairs into unpublished spans. A restore hands one sorted run of a
    /// span per call, packed in one buffer: engines that build sorted tables can take it whole.
    async fn ingest(&self, batch: IngestBatch) -> Result<()>;

    /// Applies descriptor changes atomically; returns the commit timestamp. Most engines write
    /// `changes.into_iter().map(DescriptorChange::into_write)` as one batch.
    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp>;

    /// Removes everything in these spans (cleanup after a failed restore).
    async fn discard(&self, spans: &[Span]) -> Result<()>;

    /// Re-validates a restored table's indexes before it is published. The default accepts.
    async fn validate_indexes(&self, _table: &TableDescriptor) -> Result<()> {
        Ok(())
    }
}

/// An engine that is both a source and a sink and takes ordinary writes: what the CLI and the
/// `sql` executor run against.
///
/// # Contract
/// [`KvStore::write`] applies the batch atomically at one fresh timestamp strictly above every
/// earlier write (an empty batch too), and returns it. `None` deletes the key: it writes a
/// tombstone, even when the key is absent. When a batch writes one key twice, the last write
/// wins (`write_is_atomic`).
///
/// Rows of a table are written under [`keys::table_key`]`(table_id, user_key)`; the table's id
/// is in the catalog ([`KvSource::catalog_at`]). See the README's "Writing rows from Rust".
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait KvStore: KvSource + KvSink {
    /// Writes a batch atomically; returns its commit timestamp.
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp>;
}

/// Reads a whole span at `ts` (newest version of each key, deletions dropped) by paging through
/// [`KvSource::scan`].
pub async fn read_span<S: KvSource + ?Sized>(source: &S, span: Span, ts: Timestamp) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut request = ScanRequest::new(span, Timestamp::ZERO, ts, MvccFilter::Latest);
    loop {
        let page = source.scan(request.clone()).await?;
        out.extend(page.entries.into_iter().filter_map(|e| e.value.map(|v| (e.key.to_vec(), v.to_vec()))));
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => return Ok(out),
        }
    }
}

/// Checks a scan request against a GC threshold, for implementors: reading the newest version at
/// `end` needs `end >= threshold`; reading changes or revisions after `start` needs
/// `start >= threshold` as well.
pub fn check_gc_threshold(request: &ScanRequest, threshold: Timestamp) -> Result<()> {
    let needs_start = !request.start.is_zero() || request.filter == MvccFilter::AllRevisions;
    let t = if needs_start { request.start } else { request.end };
    if t < threshold {
        return Err(crate::Error::InvalidTime(format!(
            "cannot read {} at {t}: it is below the GC threshold {threshold} (data that old has been garbage collected); \
             take a full backup, or read at a later time",
            request.span
        )));
    }
    Ok(())
}

/// One stored key of an engine without a custom comparator: `(key, ts)` encoded so that plain
/// byte order of the encodings is strata's order, key ascending and then timestamp descending
/// (newest first), the order [`KvSource::scan`] returns.
///
/// Strata keys contain `0x00` and prefix each other (`/Table/200/"a"` and `/Table/200/"a\x00"`),
/// so `key ++ timestamp` would interleave the versions of different keys. Here every `0x00` of
/// the key becomes `0x00 0xff`, the key ends with `0x00 0x01`, and the timestamp follows as the
/// bitwise complement of its wall time (8 bytes, big-endian) and logical counter (4 bytes).
///
/// All versions of `key` lie in `[mvcc_key(key, Timestamp::MAX), mvcc_key(key, Timestamp::ZERO)]`,
/// and a span `[start, end)` in `[mvcc_key(start, Timestamp::MAX), mvcc_key(end, Timestamp::MAX))`.
pub fn mvcc_key(key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 14);
    push_mvcc_key(&mut out, key, ts);
    out
}

/// Appends [`mvcc_key`]`(key, ts)` to `out` (an engine's key buffer, reused across keys).
pub fn push_mvcc_key(out: &mut Vec<u8>, key: &[u8], ts: Timestamp) {
    out.reserve(key.len() + 14);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
    out.extend_from_slice(&(!ts.wall).to_be_bytes());
    out.extend_from_slice(&(!ts.logical).to_be_bytes());
}

/// The key and timestamp of an encoding made by [`mvcc_key`], or `None` if `encoded` is not one.
pub fn decode_mvcc_key(encoded: &[u8]) -> Option<(Vec<u8>, Timestamp)> {
    let (escaped, ts) = encoded.split_at_checked(encoded.len().checked_sub(12)?)?;
    let mut key = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    loop {
        match bytes.next()? {
            0 => match bytes.next()? {
                0xff => key.push(0),
                0x01 if bytes.as_slice().is_empty() => break,
                _ => return None,
            },
            &b => key.push(b),
        }
    }
    let wall = !u64::from_be_bytes(ts[..8].try_into().ok()?);
    let logical = !u32::from_be_bytes(ts[8..].try_into().ok()?);
    Some((key, Timestamp::new(wall, logical)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ts() -> impl Strategy<Value = Timestamp> {
        (prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()], prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()])
            .prop_map(|(wall, logical)| Timestamp::new(wall, logical))
    }

    /// Keys from a small alphabet with `0x00`, `0x01` and `0xff`, so that prefixes and escapes
    /// meet often.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), Just(b'a'), any::<u8>()], 0..6)
    }

    #[test]
    fn mvcc_keys_of_prefixing_keys_do_not_interleave() {
        let (a, a0) = (b"a".as_slice(), b"a\x00".as_slice());
        let (old, new) = (Timestamp::new(1, 0), Timestamp::new(2, 0));
        // key ++ ts would put a@old after a\x00@new; the encoding keeps every version of "a" first.
        assert!(mvcc_key(a, new) < mvcc_key(a, old));
        assert!(mvcc_key(a, old) < mvcc_key(a0, new));
        assert_eq!(decode_mvcc_key(&mvcc_key(a0, old)), Some((a0.to_vec(), old)));
        assert_eq!(decode_mvcc_key(b"a\x00\x02"), None);
        assert_eq!(decode_mvcc_key(&[]), None);
    }

    proptest! {
        #[test]
        fn mvcc_key_order_is_key_ascending_then_newest_first(k1 in key(), t1 in ts(), k2 in key(), t2 in ts()) {
            let expected = k1.cmp(&k2).then(t2.cmp(&t1));
            prop_assert_eq!(mvcc_key(&k1, t1).cmp(&mvcc_key(&k2, t2)), expected);
            prop_assert_eq!(decode_mvcc_key(&mvcc_key(&k1, t1)), Some((k1.clone(), t1)));
        }

        #[test]
        fn a_span_is_a_range_of_mvcc_keys(k in key(), t in ts(), start in key(), end in key()) {
            let inside = start <= k && k < end;
            let encoded = mvcc_key(&k, t);
            let in_range = mvcc_key(&start, Timestamp::MAX) <= encoded && encoded < mvcc_key(&end, Timestamp::MAX);
            prop_assert_eq!(in_range, inside);
        }
    }
}
