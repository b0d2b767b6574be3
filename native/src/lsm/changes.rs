//! [`KvSource::scan_changes`](strata_core::KvSource::scan_changes): a scan's page answered from
//! the change index, reading what changed rather than what exists.
//!
//! Each row of the index holds the version it records (layout 2), so a page is read from the
//! index alone: a window of few writes by merging their runs (each write's rows are one range
//! sorted by key: one iterator per write, nothing collected), a window of more by passes that
//! collect its changed keys in the span, a bounded number at a time, kept for the next pages
//! (both in [`crate::store_changes`], shared with the redb store). `"versions"` is read once per
//! full page, for the key the next page resumes at. A window holding an ingest into the span is
//! not answered here: the caller scans.

use std::sync::atomic::Ordering;

use fjall::{Readable, Snapshot};
use strata_core::{check_gc_threshold, PageBuilder, Result, ScanPage, ScanRequest, Timestamp};

use super::layout::{
    change_bounds, change_key, encode_ts, split_change_key, successor, GC_THRESHOLD_KEY, LAST_TIMESTAMP_KEY,
};
use super::Inner;
use crate::store_changes::{self, ChangeRow, ChangedKeys};
use crate::store_common::{page_capacity, RowCount};

/// A row of `"changes"`: timestamp ++ key, and the stored version.
struct IndexRow {
    ts: Timestamp,
    row: fjall::Slice,
    stored: fjall::Slice,
}

impl ChangeRow for IndexRow {
    fn ts(&self) -> Timestamp {
        self.ts
    }
    fn key(&self) -> &[u8] {
        &self.row[12..]
    }
    fn stored(&self) -> &[u8] {
        &self.stored
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
        let bytes = match self.change_runs(&snapshot, request)? {
            Some(runs) => self.merge_runs(&snapshot, request, &runs, &mut out)?,
            None => {
                let generation = self.read_meta_ts(&snapshot, LAST_TIMESTAMP_KEY)?;
                self.page_from_passes(&snapshot, generation, request, &mut out)?
            }
        };
        let resume_key = if bytes >= request.target_bytes {
            let from = out.last_key().map_or_else(|| request.span.start.clone(), successor);
            self.first_key_from(&snapshot, &from, &request.span.end)?
        } else {
            None
        };
        Ok(Some(out.finish(resume_key)))
    }

    /// An index row read from fjall.
    fn index_row(&self, row: fjall::Guard) -> Result<IndexRow> {
        let (row, stored) = row.into_inner().map_err(|e| self.err("read of the change index", e))?;
        let (ts, _) = split_change_key(&row).ok_or_else(|| self.corrupt("a row of \"changes\" is too short"))?;
        Ok(IndexRow { ts, row, stored })
    }

    /// The timestamps of the writes in `request`'s window, or `None` when there are more than
    /// [`MAX_MERGED_RUNS`](store_changes::MAX_MERGED_RUNS): one seek per write.
    fn change_runs(&self, snapshot: &Snapshot, request: &ScanRequest) -> Result<Option<Vec<Timestamp>>> {
        const OP: &str = "read of the change index";
        let (_, upper) = change_bounds(request.start, request.end);
        let mut rows = RowCount::new(&self.changes_read);
        let max = self.max_merged_runs.load(Ordering::Relaxed);
        store_changes::change_runs(max, request.start, |from| {
            let lower = std::ops::Bound::Included(encode_ts(from).to_vec());
            let Some(row) = snapshot.range(&self.changes, (lower, upper.clone())).next() else { return Ok(None) };
            let k = row.key().map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (ts, _) = split_change_key(&k).ok_or_else(|| self.corrupt("a row of \"changes\" is too short"))?;
            Ok(Some(ts))
        })
    }

    /// Fills `out` from the index's `runs` (writes in the window, oldest first) by merging their
    /// rows in `request`'s span ([`store_changes::merge_runs`]); returns the page's bytes.
    fn merge_runs(
        &self,
        snapshot: &Snapshot,
        request: &ScanRequest,
        runs: &[Timestamp],
        out: &mut PageBuilder,
    ) -> Result<u64> {
        let mut rows = RowCount::new(&self.changes_read);
        let mut cursors: Vec<_> = runs
            .iter()
            .map(|&ts| {
                let range = change_key(ts, &request.span.start)..change_key(ts, &request.span.end);
                snapshot.range(&self.changes, range).map(|row| self.index_row(row))
            })
            .collect();
        store_changes::merge_runs(&mut cursors, request, out, &mut rows.rows, |message| self.corrupt(message))
    }

    /// Fills `out` from passes over the window's rows of the index (see [`ChangedKeys`]), for
    /// windows of many writes; returns the page's bytes.
    fn page_from_passes(
        &self,
        snapshot: &Snapshot,
        generation: Timestamp,
        request: &ScanRequest,
        out: &mut PageBuilder,
    ) -> Result<u64> {
        let max = self.changed_keys_per_pass.load(Ordering::Relaxed);
        let collect = |lower: &[u8]| {
            let mut rows = RowCount::new(&self.changes_read);
            let range = snapshot.range(&self.changes, change_bounds(request.start, request.end));
            ChangedKeys::collect(range.map(|row| self.index_row(row)), generation, request, lower, max, &mut rows.rows)
        };
        self.changed_keys.page_from_passes(generation, request, out, collect, |message| self.corrupt(message))
    }
}
