//! [`KvSource::scan_changes`](strata_core::KvSource::scan_changes): a scan's page answered from
//! the change log, reading what changed rather than what exists.
//!
//! A window of few writes is read by merging their runs of the log (each write's rows are one
//! range sorted by key: one cursor per write, nothing collected, [`Inner::merge_runs`]); a window
//! of more by passes that collect its changed keys in the span, a bounded number of keys and bytes
//! at a time, and keep the last few windows between pages ([`ChangedKeys`]). A window holding an
//! ingest into the span is not answered here (the ingest wrote no change-log rows, see
//! `ingest.rs`): the caller scans.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use redb::ReadableDatabase;
use strata_core::{check_gc_threshold, MvccFilter, PageBuilder, Result, ScanPage, ScanRequest, Timestamp};

use super::layout::{change_bounds, successor, ChangeKey, CHANGES, GC_THRESHOLD_KEY, LAST_TIMESTAMP_KEY, META, MVCC};
use super::Inner;
use crate::store_common::{page_capacity, RowCount};

/// How many changed keys one pass over the change log collects at most (see
/// [`EmbeddedStore::set_changed_keys_per_pass`](super::EmbeddedStore::set_changed_keys_per_pass)).
pub(super) const CHANGED_KEYS_PER_PASS: usize = 1 << 15;
/// How many bytes of changed keys and values one pass over the change log collects at most
/// (past the first key): what a window of changes holds in memory.
const CHANGED_BYTES_PER_PASS: usize = 8 << 20;
/// A window of at most this many writes is read by merging their runs of the change log (one
/// cursor each); a window of more, by passes that collect its changed keys ([`ChangedKeys`]).
pub(super) const MAX_MERGED_RUNS: usize = 64;
/// How many windows of changed keys are kept between pages (one per unit a backup exports at
/// once, by default four): with [`CHANGED_BYTES_PER_PASS`], what they hold at most.
const CHANGED_KEYS_CACHED: usize = 4;

/// A key's versions from the change log: timestamp, and the stored value (tag byte and value).
type Versions = Vec<(Timestamp, Vec<u8>)>;

/// The smallest distinct keys in `[lower, span_end)` with a version in `(start, end]`, and those
/// versions, collected from the change log for the pages of one `scan_changes`.
///
/// Valid while `generation` (the snapshot's `"last_timestamp"`) is unchanged: every write that
/// adds versions moves it. `discard` and GC, which remove versions without moving it, clear the
/// cache.
pub(super) struct ChangedKeys {
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

impl Inner {
    /// [`KvSource::scan_changes`](strata_core::KvSource::scan_changes): the page [`Inner::scan`]
    /// returns, from the change log.
    ///
    /// `scan` visits every key of the span in order and, before each, ends the page with that key
    /// as `resume_key` once the page holds `target_bytes`. Only keys with a version in the window
    /// add bytes, so the page is their versions up to the first key that makes the page full, and
    /// `resume_key` is the first key of the MVCC table after that one: one seek. The versions
    /// come from the change log's rows (which hold their values): `"mvcc"` is read for that seek
    /// only.
    pub(super) fn scan_changes(&self, request: &ScanRequest) -> Result<Option<ScanPage>> {
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

    /// The cache of windows of changed keys, newest last.
    pub(super) fn lock_changed_keys(&self) -> MutexGuard<'_, Vec<Arc<ChangedKeys>>> {
        // A list of immutable entries, consistent after any panic.
        self.changed_keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}
