//! Removing versions: [`KvSink::discard`](strata_core::KvSink::discard) empties spans (a failed
//! restore's); GC drops the versions hidden at a threshold and raises the GC threshold, below
//! which reads are refused. Both remove the versions' change-index and `"ingested"` rows with
//! them, hold the commit lock (the byte counts stay exact) and write in batches of at most
//! [`BATCH_ROWS`] removals, the last one synced.

use std::collections::BTreeSet;

use fjall::{OwnedWriteBatch, PersistMode, Readable};
use strata_core::{Result, Span, Timestamp};

use super::layout::{change_key, encode_ts, split_change_key, split_version, unescape, version_key, GC_THRESHOLD_KEY};
use super::write::ByteDeltas;
use super::Inner;
use crate::store_pending;

/// Removals per write batch: what a discard or GC holds in memory at once.
const BATCH_ROWS: usize = 1 << 16;

impl Inner {
    /// Commits `batch` (not synced) and starts a new one once it holds [`BATCH_ROWS`] items.
    fn commit_if_full(&self, op: &str, batch: &mut OwnedWriteBatch) -> Result<()> {
        if batch.len() >= BATCH_ROWS {
            std::mem::replace(batch, self.db.batch()).commit().map_err(|e| self.err(op, e))?;
        }
        Ok(())
    }

    /// Commits the last batch of a discard or GC with the byte counts, synced (which makes the
    /// earlier batches durable too).
    fn commit_last(&self, op: &str, batch: OwnedWriteBatch, deltas: ByteDeltas) -> Result<()> {
        let mut batch = batch.durability(Some(PersistMode::SyncData));
        let counts = self.count_into(&mut batch, deltas);
        if batch.is_empty() {
            // Nothing removed: sync what earlier batches wrote anyway.
            return self.db.persist(PersistMode::SyncData).map_err(|e| self.err(op, e));
        }
        batch.commit().map_err(|e| self.err(op, e))?;
        self.apply_counts(counts);
        Ok(())
    }

    /// [`KvSink::discard`](strata_core::KvSink::discard): removes every version in `spans` with
    /// its change-index row, and the `"ingested"` rows of the ingests wholly inside a span (a row
    /// that only overlaps one stays: a scan of changes falling back to a scan is never wrong).
    pub(super) fn discard(&self, spans: &[Span]) -> Result<()> {
        const OP: &str = "discard";
        let _commit = self.lock_commit();
        // Cached windows may hold keys whose versions this removes (harmless, but stale).
        self.changed_keys.clear();
        let snapshot = self.db.snapshot();
        let mut batch = self.db.batch();
        let mut deltas = ByteDeltas::default();
        let mut key = Vec::new();
        for span in spans.iter().filter(|s| !s.is_empty()) {
            // The ingests into the span: their versions have no change-index rows to remove.
            let mut ingests: BTreeSet<Timestamp> = BTreeSet::new();
            for row in snapshot.iter(&self.ingested) {
                let (k, end) = row.into_inner().map_err(|e| self.err(OP, e))?;
                let (ts, start) =
                    split_change_key(&k).ok_or_else(|| self.corrupt("a row of \"ingested\" is too short"))?;
                if start < span.end.as_slice() && span.start.as_slice() < &*end {
                    ingests.insert(ts);
                }
                if span.start.as_slice() <= start && &*end <= span.end.as_slice() {
                    batch.remove(&self.ingested, k);
                }
            }
            let lower = version_key(&span.start, Timestamp::MAX);
            let upper = version_key(&span.end, Timestamp::MAX);
            for row in snapshot.range(&self.versions, lower..upper) {
                let (k, v) = row.into_inner().map_err(|e| self.err(OP, e))?;
                let (escaped, ts) = split_version(&k).ok_or_else(|| self.bad_version_key(&k))?;
                if !unescape(escaped, &mut key) {
                    return Err(self.bad_version_key(&k));
                }
                deltas.count(&key, v.len(), -1);
                batch.remove(&self.versions, k);
                if !ingests.contains(&ts) {
                    batch.remove(&self.changes, change_key(ts, &key));
                }
                self.commit_if_full(OP, &mut batch)?;
            }
        }
        // The records of restores' ingests into these spans go in the last batch, once every
        // version before it is removed.
        for row in snapshot.iter(&self.pending_ingests) {
            let (start, end) = row.into_inner().map_err(|e| self.err(OP, e))?;
            if store_pending::discarded_by(&Span::new(start.to_vec(), end.to_vec()), spans) {
                batch.remove(&self.pending_ingests, start);
            }
        }
        self.commit_last(OP, batch, deltas)
    }

    /// Garbage collection (see [`LsmStore::gc`](super::LsmStore::gc)); also drops the
    /// change-index and `"ingested"` rows at or below `threshold`.
    ///
    /// The raised threshold is written (synced) first: a crash in the middle of a GC then leaves
    /// some versions below it uncollected, never a read below it answered without them.
    pub(super) fn gc(&self, threshold: Timestamp) -> Result<()> {
        const OP: &str = "garbage collection";
        let _commit = self.lock_commit();
        self.changed_keys.clear();
        let old = self.read_meta_ts(&self.db.snapshot(), GC_THRESHOLD_KEY)?;
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.meta, GC_THRESHOLD_KEY, encode_ts(old.max(threshold)).as_slice());
        batch.commit().map_err(|e| self.err(OP, e))?;

        let snapshot = self.db.snapshot();
        let mut batch = self.db.batch();
        let mut deltas = ByteDeltas::default();
        // For each key, every version at or below the threshold except the newest of them,
        // which stays unless it is a tombstone.
        let mut current: Option<Vec<u8>> = None;
        let mut kept_one = false;
        let mut key = Vec::new();
        for row in snapshot.iter(&self.versions) {
            let (k, v) = row.into_inner().map_err(|e| self.err(OP, e))?;
            let (escaped, ts) = split_version(&k).ok_or_else(|| self.bad_version_key(&k))?;
            if current.as_deref() != Some(escaped) {
                current = Some(escaped.to_vec());
                kept_one = false;
            }
            if ts > threshold {
                continue;
            }
            if !unescape(escaped, &mut key) {
                return Err(self.bad_version_key(&k));
            }
            let keep = !kept_one && self.decode_value(&key, &v)?.is_some();
            kept_one = true;
            if !keep {
                deltas.count(&key, v.len(), -1);
                batch.remove(&self.versions, k);
                self.commit_if_full(OP, &mut batch)?;
            }
        }
        // No scan of changes starts below the threshold: the change-index rows and the records
        // of ingests at or below it are never read.
        let upper = if threshold == Timestamp::MAX { None } else { Some(encode_ts(threshold.next()).to_vec()) };
        for keyspace in [&self.changes, &self.ingested] {
            let rows = match &upper {
                Some(upper) => snapshot.range(keyspace, ..upper.clone()),
                None => snapshot.iter(keyspace),
            };
            for row in rows {
                let k = row.key().map_err(|e| self.err(OP, e))?;
                batch.remove(keyspace, k);
                self.commit_if_full(OP, &mut batch)?;
            }
        }
        self.commit_last(OP, batch, deltas)
    }

    /// The GC threshold: reads below it are refused.
    pub(super) fn gc_threshold(&self) -> Result<Timestamp> {
        self.read_meta_ts(&self.db.snapshot(), GC_THRESHOLD_KEY)
    }

    /// [`KvSource::estimate_bytes`](strata_core::KvSource::estimate_bytes): the bytes of every
    /// table (and of the keys outside tables) whose keys overlap `span`.
    pub(super) fn estimate_bytes(&self, span: &Span) -> Option<u64> {
        use strata_core::keys;
        if span.is_empty() {
            return None;
        }
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut sum = 0u64;
        for (&id, &bytes) in counts.iter() {
            let overlaps = match id {
                // Keys outside tables sort before them (the system span) or after (none today).
                super::layout::OTHER => span.start.as_slice() < keys::table_prefix(0).as_slice(),
                id => {
                    let t = keys::table_span(id);
                    span.start < t.end && t.start < span.end
                }
            };
            if overlaps {
                sum = sum.saturating_add(bytes);
            }
        }
        Some(sum)
    }
}
