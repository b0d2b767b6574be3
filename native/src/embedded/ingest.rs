//! [`KvSink::ingest`]: a restore's bulk writes, which record their span in `"ingested"` instead
//! of one change-log row per key, commit without syncing, and start a background write-back of
//! the database file; and the one question a scan of changes asks of `"ingested"`.
//!
//! [`KvSink::ingest`]: strata_core::KvSink::ingest
//! [`KvSink::publish`]: strata_core::KvSink::publish

use std::ops::Bound;
use std::sync::atomic::Ordering;

use strata_core::{IngestBatch, Result, ScanRequest};

use super::layout::{change_bounds, successor, version_key, ChangeKey, INGESTED, MVCC, TAG_VALUE};
use super::stats::ByteDeltas;
use super::{EmbeddedStore, Inner};

impl Inner {
    /// [`KvSink::ingest`]: writes `pairs` as versions at one fresh timestamp, without change-log
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
    ///
    /// [`KvSink::ingest`]: strata_core::KvSink::ingest
    /// [`KvSink::publish`]: strata_core::KvSink::publish
    pub(super) fn ingest(&self, batch: &IngestBatch) -> Result<()> {
        const OP: &str = "ingest";
        let (Some(min), Some(max)) = (batch.iter().map(|p| p.0).min(), batch.iter().map(|p| p.0).max()) else {
            return Ok(());
        };
        self.transact_at_fresh_ts(OP, redb::Durability::None, |txn, ts| {
            let mut mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            let mut buf = vec![TAG_VALUE];
            let mut bytes = ByteDeltas::default();
            let mut cursor =
                mvcc.lower_bound_mut(Bound::Included(version_key(min, ts))).map_err(|e| self.err(OP, e))?;
            for (key, value) in batch {
                buf.truncate(1);
                buf.extend_from_slice(value);
                bytes.count(key, buf.len(), 1);
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
            ingested.insert((ts.wall, ts.logical, min), end.as_slice()).map_err(|e| self.err(OP, e))?;
            self.apply_byte_deltas(OP, txn, bytes)
        })
        .map(drop)
    }

    /// Whether an ingest at a timestamp in `(request.start, request.end]` wrote into
    /// `request.span`: its versions have no rows in the change log, so
    /// [`Inner::scan_changes`] cannot answer `request` from the log (returning `Ok(None)` makes
    /// the caller scan instead). `txn` must be the read transaction the scan reads from.
    pub(super) fn ingested_spans_overlap(&self, txn: &redb::ReadTransaction, request: &ScanRequest) -> Result<bool> {
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
}

impl EmbeddedStore {
    /// Starts writing the database file's dirty pages to disk in the background, unless a
    /// write-back is still running (with a tokio runtime only, on its blocking pool).
    ///
    /// Ingests do not sync (see the on-disk layout): their pages wait in the OS's page cache until
    /// the next durable commit, the publish at the end of a restore, whose sync would then write
    /// them all while the restore waits. Syncing the file from another handle meanwhile writes
    /// them while the restore goes on. It changes nothing of what is durable when: only redb's own
    /// commits make a transaction durable.
    pub(super) fn write_back(&self) {
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
}
