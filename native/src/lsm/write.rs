//! Writes: each one durable fjall write batch at one fresh timestamp, taken under the commit lock
//! and persisted as `"last_timestamp"` in the same batch; writes and publishes (a version in
//! `"versions"` and a row in `"changes"` for every key) and descriptor id allocation; and the
//! byte counts of `"table_bytes"` every commit updates.

use std::collections::BTreeMap;

use fjall::{OwnedWriteBatch, PersistMode};
use strata_core::{keys, DescId, DescriptorChange, Error, Result, Span, Status, Timestamp, FIRST_USER_ID};

use super::layout::{change_key, encode_ts, version_key, LAST_TIMESTAMP_KEY, TAG_TOMBSTONE, TAG_VALUE};
use super::Inner;
use crate::store_common::apply_delta;
use crate::store_pending;

/// What one commit adds to (or removes from) the byte counts, per table.
pub(super) use crate::store_common::ByteDeltas;

impl Inner {
    /// Adds the rows of `"table_bytes"` that `deltas` change to `batch`, and returns the new
    /// counts, to be applied with [`Inner::apply_counts`] once the batch committed. The caller
    /// holds the commit lock.
    pub(super) fn count_into(&self, batch: &mut OwnedWriteBatch, deltas: ByteDeltas) -> Vec<(u32, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut new = Vec::new();
        for (id, sum) in deltas.into_sums() {
            let old = counts.get(&id).copied().unwrap_or(0);
            let count = apply_delta(old, sum);
            batch.insert(&self.table_bytes, id.to_be_bytes().as_slice(), count.to_be_bytes().as_slice());
            new.push((id, count));
        }
        new
    }

    /// Applies counts returned by [`Inner::count_into`] after their batch committed.
    pub(super) fn apply_counts(&self, new: Vec<(u32, u64)>) {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).extend(new);
    }

    /// Commits one durable batch at a fresh timestamp, filled by `fill` (which counts the
    /// versions it adds), with `"last_timestamp"` and the byte counts.
    fn commit_at_fresh_ts(
        &self,
        op: &str,
        fill: impl FnOnce(&mut OwnedWriteBatch, Timestamp, &mut ByteDeltas) -> Result<()>,
    ) -> Result<Timestamp> {
        let _commit = self.lock_commit();
        let pending = self.clock.issue();
        let ts = pending.ts;
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let mut deltas = ByteDeltas::default();
        fill(&mut batch, ts, &mut deltas)?;
        batch.insert(&self.meta, LAST_TIMESTAMP_KEY, encode_ts(ts).as_slice());
        let counts = self.count_into(&mut batch, deltas);
        batch.commit().map_err(|e| self.err(op, e))?;
        self.apply_counts(counts);
        drop(pending);
        Ok(ts)
    }

    /// Adds one version of `key` (`encoded`: tag and value) and its change-index row to `batch`.
    fn put_version(
        &self,
        batch: &mut OwnedWriteBatch,
        deltas: &mut ByteDeltas,
        key: &[u8],
        ts: Timestamp,
        encoded: &[u8],
    ) {
        batch.insert(&self.versions, version_key(key, ts), encoded);
        batch.insert(&self.changes, change_key(ts, key), encoded);
        deltas.count(key, encoded.len(), 1);
    }

    /// Writes `batch` (a value, or `None` for a deletion, per key; the last write of a key wins)
    /// at one fresh timestamp: [`KvStore::write`](strata_core::KvStore::write), `put`, `delete`
    /// and [`KvSink::publish`](strata_core::KvSink::publish).
    pub(super) fn write(&self, op: &str, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.write_publishing(op, batch, &[])
    }

    /// [`KvSink::publish`](strata_core::KvSink::publish): the descriptors' writes, which drop the
    /// records of the ingests into the tables they publish.
    pub(super) fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        let (writes, published) = store_pending::publish_writes(changes);
        self.write_publishing("publish of descriptors", writes, &published)
    }

    /// [`Inner::write`] of `batch`, dropping the ingest records of `published` (spans of tables
    /// the batch publishes) in the same commit.
    fn write_publishing(
        &self,
        op: &str,
        batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        published: &[Span],
    ) -> Result<Timestamp> {
        // One version per key: fjall's batch holds every item at one sequence number.
        let last: BTreeMap<&[u8], Option<&[u8]>> = batch.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
        self.commit_at_fresh_ts(op, |out, ts, deltas| {
            for span in published {
                out.remove(&self.pending_ingests, span.start.as_slice());
            }
            let mut buf = Vec::new();
            for (key, value) in last {
                buf.clear();
                match value {
                    Some(v) => {
                        buf.push(TAG_VALUE);
                        buf.extend_from_slice(v);
                    }
                    None => buf.push(TAG_TOMBSTONE),
                }
                self.put_version(out, deltas, key, ts, &buf);
            }
            Ok(())
        })
    }

    /// [`KvSink::allocate_ids`](strata_core::KvSink::allocate_ids): moves the id counter
    /// (a version of [`keys::ID_COUNTER_KEY`], u32 BE) up by `count`; returns the first id
    /// allocated (the counter before, [`FIRST_USER_ID`] if there is none).
    pub(super) fn allocate_ids(&self, count: u32) -> Result<DescId> {
        const OP: &str = "id allocation";
        let mut first = FIRST_USER_ID;
        self.commit_at_fresh_ts(OP, |out, ts, deltas| {
            // The newest version of the counter, whatever its timestamp; every earlier commit is
            // applied (this one holds the commit lock).
            let lower = version_key(keys::ID_COUNTER_KEY, Timestamp::MAX);
            let upper = version_key(keys::ID_COUNTER_KEY, Timestamp::ZERO);
            if let Some(row) = self.versions.range(lower..=upper).next() {
                let (_, v) = row.into_inner().map_err(|e| self.err(OP, e))?;
                if let Some(bytes) = self.decode_value(keys::ID_COUNTER_KEY, &v)? {
                    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
                        first = u32::from_be_bytes(b);
                    }
                }
            }
            let next = first.checked_add(count).ok_or_else(|| Error::Kv {
                message: format!("cannot allocate {count} descriptor ids after {first}: the id space is exhausted"),
                status: Status::Permanent,
            })?;
            let mut value = vec![TAG_VALUE];
            value.extend_from_slice(&next.to_be_bytes());
            self.put_version(out, deltas, keys::ID_COUNTER_KEY, ts, &value);
            Ok(())
        })?;
        Ok(first)
    }
}
