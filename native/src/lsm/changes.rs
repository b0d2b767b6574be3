//! [`KvSource::scan_changes`](strata_core::KvSource::scan_changes): a scan's page answered from
//! the change index, reading what changed rather than what exists.
//!
//! The index holds keys only: which keys a write changed. A window of few writes is read by
//! merging their runs of the index (each write's rows are one range sorted by key: one iterator
//! per write, nothing collected); a window of more by passes that collect its changed keys in the
//! span, a bounded number at a time, kept for the next pages ([`ChangedKeys`]). Each changed key's
//! versions in the window are then read from `"versions"` (one seek per key). A window holding an
//! ingest into the span is not answered here: the caller scans.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use fjall::{Readable, Snapshot};
use strata_core::{check_gc_threshold, PageBuilder, Result, ScanPage, ScanRequest, Timestamp};

use super::layout::{
    change_bounds, change_key, encode_ts, split_change_key, successor, GC_THRESHOLD_KEY, LAST_TIMESTAMP_KEY,
};
use super::Inner;
use crate::store_common::{page_capacity, RowCount};

/// How many changed keys one pass over the change index collects at most.
pub(super) const CHANGED_KEYS_PER_PASS: usize = 1 << 15;
/// A window of at most this many writes is read by merging their runs of the change index; a
/// window of more, by passes.
pub(super) const MAX_MERGED_RUNS: usize = 64;
/// How many windows of changed keys are kept between pages.
const CHANGED_KEYS_CACHED: usize = 4;

/// The smallest distinct keys in `[lower, span_end)` changed in `(start, end]`, collected from
/// the change index for the pages of one scan of changes. Valid while `generation` (the
/// snapshot's `"last_timestamp"`, which every write moves) is unchanged; a key whose versions a
/// discard or GC removed since is read and yields nothing.
pub(super) struct ChangedKeys {
    generation: Timestamp,
    start: Timestamp,
    end: Timestamp,
    span_end: Vec<u8>,
    lower: Vec<u8>,
    /// Sorted ascending, distinct.
    keys: Vec<Vec<u8>>,
    /// Whether every changed key in `[lower, span_end)` is in `keys` (else `keys` holds the
    /// smallest of them).
    complete: bool,
}

impl ChangedKeys {
    fn covers(&self, generation: Timestamp, request: &ScanRequest, lower: &[u8]) -> bool {
        self.generation == generation
            && self.start == request.start
            && self.end == request.end
            && self.span_end == request.span.end
            && self.lower.as_slice() <= lower
            && (self.complete || self.keys.last().is_some_and(|k| k.as_slice() >= lower))
    }
}

impl Inner {
    /// [`KvSource::scan_changes`](strata_core::KvSource::scan_changes): the page
    /// [`Inner::scan`] returns, from the change index.
    ///
    /// Only keys with a version in the window add bytes to a scan's page, so the page is their
    /// versions up to the first key that makes it full, and `resume_key` is the first stored key
    /// after that one (one seek).
    pub(super) fn scan_changes(&self, request: &ScanRequest) -> Result<Option<ScanPage>> {
        if request.start.is_zero() {
            // Everything changed since zero: a full scan is the right tool.
            return Ok(None);
        }
        let snapshot = self.db.snapshot();
        check_gc_threshold(request, self.read_meta_ts(&snapshot, GC_THRESHOLD_KEY)?)?;
        if request.span.is_empty() || request.end <= request.start {
            return Ok(Some(ScanPage::default()));
        }
        if self.ingested_spans_overlap(&snapshot, request)? {
            return Ok(None);
        }
        let mut out = PageBuilder::with_capacity(page_capacity(request));
        let mut bytes = 0u64;
        // Adds a changed key's versions; `true` once the page is full.
        let mut visit = |key: &[u8], out: &mut PageBuilder| -> Result<bool> {
            bytes += self.push_versions_of(&snapshot, request, key, out)?;
            Ok(bytes >= request.target_bytes)
        };
        let full_after = match self.change_runs(&snapshot, request)? {
            Some(runs) => self.merge_runs(&snapshot, request, &runs, &mut out, &mut visit)?,
            None => {
                let generation = self.read_meta_ts(&snapshot, LAST_TIMESTAMP_KEY)?;
                self.visit_passes(&snapshot, generation, request, &mut out, &mut visit)?
            }
        };
        let resume_key = match full_after {
            Some(last) => self.next_key_after(&snapshot, &last, &request.span.end)?,
            None => None,
        };
        Ok(Some(out.finish(resume_key)))
    }

    /// The timestamps of the writes in `request`'s window, or `None` when there are more than
    /// [`MAX_MERGED_RUNS`]: one seek per write.
    fn change_runs(&self, snapshot: &Snapshot, request: &ScanRequest) -> Result<Option<Vec<Timestamp>>> {
        const OP: &str = "read of the change index";
        let max = self.max_merged_runs.load(Ordering::Relaxed);
        if max == 0 {
            return Ok(None);
        }
        let (_, upper) = change_bounds(request.start, request.end);
        let mut from = request.start.next();
        let mut runs = Vec::new();
        let mut rows = RowCount::new(&self.changes_read);
        loop {
            let lower = std::ops::Bound::Included(encode_ts(from).to_vec());
            let Some(row) = snapshot.range(&self.changes, (lower, upper.clone())).next() else { return Ok(Some(runs)) };
            let k = row.key().map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (ts, _) = split_change_key(&k).ok_or_else(|| self.corrupt("a row of \"changes\" is too short"))?;
            if runs.len() >= max {
                return Ok(None);
            }
            runs.push(ts);
            if ts == Timestamp::MAX {
                return Ok(Some(runs));
            }
            from = ts.next();
        }
    }

    /// Visits the changed keys of `runs` (writes in the window) in `request`'s span, in key
    /// order, by merging the runs' rows, until `visit` says the page is full; returns the key at
    /// which it was, if it was.
    fn merge_runs(
        &self,
        snapshot: &Snapshot,
        request: &ScanRequest,
        runs: &[Timestamp],
        out: &mut PageBuilder,
        visit: &mut impl FnMut(&[u8], &mut PageBuilder) -> Result<bool>,
    ) -> Result<Option<Vec<u8>>> {
        const OP: &str = "read of the change index";
        let mut rows = RowCount::new(&self.changes_read);
        let mut cursors = Vec::with_capacity(runs.len());
        let mut heads: Vec<Option<fjall::Slice>> = Vec::with_capacity(runs.len());
        for &ts in runs {
            let range = change_key(ts, &request.span.start)..change_key(ts, &request.span.end);
            let mut cursor = snapshot.range(&self.changes, range);
            let head = cursor.next().map(|row| row.key()).transpose().map_err(|e| self.err(OP, e))?;
            rows.rows += u64::from(head.is_some());
            cursors.push(cursor);
            heads.push(head);
        }
        let mut smallest_runs: Vec<usize> = Vec::with_capacity(runs.len());
        loop {
            smallest_runs.clear();
            let mut smallest: Option<&[u8]> = None;
            for (i, head) in heads.iter().enumerate() {
                let Some(k) = head else { continue };
                let key = &k[12..];
                match smallest.map(|s| key.cmp(s)) {
                    None | Some(std::cmp::Ordering::Less) => {
                        smallest = Some(key);
                        smallest_runs.clear();
                        smallest_runs.push(i);
                    }
                    Some(std::cmp::Ordering::Equal) => smallest_runs.push(i),
                    Some(std::cmp::Ordering::Greater) => {}
                }
            }
            let Some(key) = smallest.map(<[u8]>::to_vec) else { return Ok(None) };
            if visit(&key, out)? {
                return Ok(Some(key));
            }
            for &i in &smallest_runs {
                heads[i] = cursors[i].next().map(|row| row.key()).transpose().map_err(|e| self.err(OP, e))?;
                rows.rows += u64::from(heads[i].is_some());
            }
        }
    }

    /// Visits the changed keys of `request`'s window and span in key order, from passes over the
    /// window's rows of the change index (see [`ChangedKeys`]), until `visit` says the page is
    /// full; returns the key at which it was, if it was.
    fn visit_passes(
        &self,
        snapshot: &Snapshot,
        generation: Timestamp,
        request: &ScanRequest,
        out: &mut PageBuilder,
        visit: &mut impl FnMut(&[u8], &mut PageBuilder) -> Result<bool>,
    ) -> Result<Option<Vec<u8>>> {
        let mut lower = request.span.start.clone();
        loop {
            let chunk = self.changed_keys(snapshot, generation, request, &lower)?;
            let first = chunk.keys.partition_point(|k| *k < lower);
            for key in &chunk.keys[first..] {
                if visit(key, out)? {
                    return Ok(Some(key.clone()));
                }
            }
            match (chunk.complete, chunk.keys.last()) {
                (false, Some(last)) => lower = successor(last),
                _ => return Ok(None),
            }
        }
    }

    /// The changed keys of `request`'s window and span at or after `lower`, from the cache or
    /// from one pass over the window's rows of the change index.
    fn changed_keys(
        &self,
        snapshot: &Snapshot,
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
        let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut complete = true;
        let mut rows = RowCount::new(&self.changes_read);
        for row in snapshot.range(&self.changes, change_bounds(request.start, request.end)) {
            let k = row.key().map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (_, key) = split_change_key(&k).ok_or_else(|| self.corrupt("a row of \"changes\" is too short"))?;
            if key < lower || key >= span_end || keys.contains(key) {
                continue;
            }
            if keys.len() >= max {
                complete = false;
                if keys.last().is_some_and(|last| key > last.as_slice()) {
                    continue;
                }
                keys.pop_last();
            }
            keys.insert(key.to_vec());
        }
        let chunk = Arc::new(ChangedKeys {
            generation,
            start: request.start,
            end: request.end,
            span_end: request.span.end.clone(),
            lower: lower.to_vec(),
            keys: keys.into_iter().collect(),
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
        self.changed_keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}
