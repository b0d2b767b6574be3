//! [`KvSource::scan_changes`](strata_core::KvSource::scan_changes): a scan's page answered from
//! the change log, reading what changed rather than what exists.
//!
//! A window of few writes is read by merging their runs of the log (each write's rows are one
//! range sorted by key: one cursor per write, nothing collected, [`Inner::merge_runs`]); a window
//! of more by passes that collect its changed keys in the span, a bounded number of keys and bytes
//! at a time, and keep the last few windows between pages ([`ChangedKeys`]). A window holding an
//! ingest into the span is not answered here (the ingest wrote no change-log rows, see
//! `ingest.rs`): the caller scans.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use redb::ReadableDatabase;
use strata_core::{check_gc_threshold, PageBuilder, Result, ScanPage, ScanRequest, Timestamp};

use super::layout::{change_bounds, successor, ChangeKey, CHANGES, GC_THRESHOLD_KEY, LAST_TIMESTAMP_KEY, META, MVCC};
use super::Inner;
use crate::store_changes::{self, ChangeRow, ChangedKeys};
use crate::store_common::{page_capacity, RowCount};

type ChangeTable = redb::ReadOnlyTable<ChangeKey, &'static [u8]>;

/// A row of `"change_log"`, as redb reads it.
struct LogRow<'a>(redb::AccessGuard<'a, ChangeKey>, redb::AccessGuard<'a, &'static [u8]>);

impl ChangeRow for LogRow<'_> {
    fn ts(&self) -> Timestamp {
        let (wall, logical, _) = self.0.value();
        Timestamp::new(wall, logical)
    }
    fn key(&self) -> &[u8] {
        self.0.value().2
    }
    fn stored(&self) -> &[u8] {
        self.1.value()
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
        let changes: ChangeTable = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
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
    /// keys sorted), or `None` when there are more than
    /// [`MAX_MERGED_RUNS`](store_changes::MAX_MERGED_RUNS): one seek per write.
    fn change_runs(&self, changes: &ChangeTable, request: &ScanRequest) -> Result<Option<Vec<Timestamp>>> {
        const OP: &str = "read of the change log";
        let (_, upper) = change_bounds(request.start, request.end);
        let mut rows = RowCount::new(&self.change_rows_read);
        let max = self.max_merged_runs.load(Ordering::Relaxed);
        store_changes::change_runs(max, request.start, |from| {
            let lower = Bound::Included((from.wall, from.logical, &[][..]));
            let first = changes.range::<ChangeKey>((lower, upper)).map_err(|e| self.err(OP, e))?.next();
            let Some(row) = first else { return Ok(None) };
            let (k, _) = row.map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (wall, logical, _) = k.value();
            Ok(Some(Timestamp::new(wall, logical)))
        })
    }

    /// Fills `out` from the change log's `runs` (writes in the window, oldest first) by merging
    /// their rows in `request`'s span, key by key, up to the page's target; returns its bytes
    /// ([`store_changes::merge_runs`]).
    fn merge_runs(
        &self,
        changes: &ChangeTable,
        request: &ScanRequest,
        runs: &[Timestamp],
        out: &mut PageBuilder,
    ) -> Result<u64> {
        const OP: &str = "read of the change log";
        let mut rows = RowCount::new(&self.change_rows_read);
        let (start, end) = (request.span.start.as_slice(), request.span.end.as_slice());
        let mut cursors = Vec::with_capacity(runs.len());
        for ts in runs {
            let range = changes
                .range::<(u64, u32, &[u8])>((ts.wall, ts.logical, start)..(ts.wall, ts.logical, end))
                .map_err(|e| self.err(OP, e))?;
            cursors.push(range.map(|row| row.map(|(k, v)| LogRow(k, v)).map_err(|e| self.err(OP, e))));
        }
        store_changes::merge_runs(&mut cursors, request, out, &mut rows.rows, |message| self.corrupt(message))
    }

    /// Fills `out` from passes over the window's rows of the change log (see [`ChangedKeys`]),
    /// for windows of many writes; returns the page's bytes.
    fn page_from_passes(
        &self,
        changes: &ChangeTable,
        generation: Timestamp,
        request: &ScanRequest,
        out: &mut PageBuilder,
    ) -> Result<u64> {
        const OP: &str = "read of the change log";
        let max = self.changed_keys_per_pass.load(Ordering::Relaxed);
        let collect = |lower: &[u8]| {
            let mut rows = RowCount::new(&self.change_rows_read);
            let range =
                changes.range::<ChangeKey>(change_bounds(request.start, request.end)).map_err(|e| self.err(OP, e))?;
            let range = range.map(|row| row.map(|(k, v)| LogRow(k, v)).map_err(|e| self.err(OP, e)));
            ChangedKeys::collect(range, generation, request, lower, max, &mut rows.rows)
        };
        self.changed_keys.page_from_passes(generation, request, out, collect, |message| self.corrupt(message))
    }
}
