//! Removing versions: [`KvSink::discard`](strata_core::KvSink::discard) empties spans (a failed
//! restore's); GC drops the versions hidden at a threshold and raises the GC threshold, below
//! which reads are refused. Both remove the versions' change-log and `"ingested"` rows with them
//! and clear the cache of changed keys.

use std::collections::BTreeSet;
use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable};
use strata_core::{Result, Span, Timestamp};

use super::layout::{
    encode_ts, version_ts, ChangeKey, CHANGES, GC_THRESHOLD_KEY, INGESTED, META, MVCC, PENDING_INGESTS,
};
use super::stats::ByteDeltas;
use super::Inner;
use crate::store_pending;

impl Inner {
    /// [`KvSink::discard`](strata_core::KvSink::discard): removes every version in `spans` with
    /// its change-log row, and the `"ingested"` rows of the ingests wholly inside a span (a row
    /// that only overlaps one stays: a scan of changes falling back to a full scan is never wrong).
    pub(super) fn discard(&self, spans: &[Span]) -> Result<()> {
        const OP: &str = "discard";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        // Cached windows of changes may hold versions this removes.
        self.changed_keys.clear();
        let mut bytes = ByteDeltas::default();
        {
            let mut mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            let mut changes = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
            let mut ingested = txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
            // The records of restores' ingests into these spans go with them.
            let mut pending = txn.open_table(PENDING_INGESTS).map_err(|e| self.err(OP, e))?;
            pending
                .retain(|start, end| !store_pending::discarded_by(&Span::new(start.to_vec(), end.to_vec()), spans))
                .map_err(|e| self.err(OP, e))?;
            for span in spans.iter().filter(|s| !s.is_empty()) {
                // The ingests into the span: their versions have no change-log rows to remove,
                // and the rows of those wholly inside the span go with their versions.
                let mut ingests: BTreeSet<Timestamp> = BTreeSet::new();
                ingested
                    .retain(|(wall, logical, start), end| {
                        if start < span.end.as_slice() && span.start.as_slice() < end {
                            ingests.insert(Timestamp::new(wall, logical));
                        }
                        !(span.start.as_slice() <= start && end <= span.end.as_slice())
                    })
                    .map_err(|e| self.err(OP, e))?;
                let lower = (span.start.as_slice(), 0u64, 0u32);
                let upper = (span.end.as_slice(), 0u64, 0u32);
                let mut removed: Vec<(Vec<u8>, Timestamp)> = Vec::new();
                mvcc.retain_in::<(&[u8], u64, u32), _>(
                    (Bound::Included(lower), Bound::Excluded(upper)),
                    |(key, inverted_wall, inverted_logical), value| {
                        bytes.count(key, value.len(), -1);
                        let ts = version_ts(inverted_wall, inverted_logical);
                        if !ingests.contains(&ts) {
                            removed.push((key.to_vec(), ts));
                        }
                        false
                    },
                )
                .map_err(|e| self.err(OP, e))?;
                for (key, ts) in &removed {
                    changes.remove((ts.wall, ts.logical, key.as_slice())).map_err(|e| self.err(OP, e))?;
                }
            }
        }
        self.apply_byte_deltas(OP, &txn, bytes)?;
        txn.commit().map_err(|e| self.err(OP, e))
    }

    /// Garbage collection (see [`EmbeddedStore::gc`](super::EmbeddedStore::gc)); also drops the
    /// change-log and `"ingested"` rows at or below `threshold`.
    pub(super) fn gc(&self, threshold: Timestamp) -> Result<()> {
        const OP: &str = "garbage collection";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        // Cached windows of changes may hold versions this removes.
        self.changed_keys.clear();
        let mut bytes = ByteDeltas::default();
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
                        bytes.count(key, v.value().len(), -1);
                        doomed.push((key.to_vec(), inverted_wall, inverted_logical));
                    }
                }
            }
            for (key, inverted_wall, inverted_logical) in &doomed {
                mvcc.remove((key.as_slice(), *inverted_wall, *inverted_logical)).map_err(|e| self.err(OP, e))?;
            }
            // No scan of changes starts below the threshold: the change-log rows and the records
            // of ingests at or below it are never read.
            let mut changes = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
            let upper = if threshold == Timestamp::MAX {
                Bound::Unbounded
            } else {
                let above = threshold.next();
                Bound::Excluded((above.wall, above.logical, &[][..]))
            };
            changes.retain_in::<ChangeKey, _>((Bound::Unbounded, upper), |_, _| false).map_err(|e| self.err(OP, e))?;
            let mut ingested = txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
            ingested.retain_in::<ChangeKey, _>((Bound::Unbounded, upper), |_, _| false).map_err(|e| self.err(OP, e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
            let old = self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?;
            meta.insert(GC_THRESHOLD_KEY, encode_ts(old.max(threshold)).as_slice()).map_err(|e| self.err(OP, e))?;
        }
        self.apply_byte_deltas(OP, &txn, bytes)?;
        txn.commit().map_err(|e| self.err(OP, e))
    }

    /// The GC threshold: reads below it are refused.
    pub(super) fn gc_threshold(&self) -> Result<Timestamp> {
        const OP: &str = "read of the GC threshold";
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        self.read_meta_ts(&meta, GC_THRESHOLD_KEY)
    }
}
