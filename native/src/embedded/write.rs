//! Write transactions: each at one fresh timestamp, persisted as `"last_timestamp"` in the same
//! transaction; writes and publishes (a version in `"mvcc"` and its change-log row for every key)
//! and descriptor id allocation.

use redb::ReadableTable;
use strata_core::{keys, DescId, DescriptorChange, Error, Result, Span, Status, Timestamp, FIRST_USER_ID};

use super::layout::{
    encode_ts, version_key, ChangeKey, VersionKey, CHANGES, LAST_TIMESTAMP_KEY, META, MVCC, PENDING_INGESTS,
    TAG_TOMBSTONE, TAG_VALUE,
};
use super::stats::ByteDeltas;
use super::Inner;
use crate::store_pending;

/// The tables a write transaction adds versions to.
struct WriteTables<'t> {
    mvcc: redb::Table<'t, VersionKey, &'static [u8]>,
    changes: redb::Table<'t, ChangeKey, &'static [u8]>,
    /// What the versions add to `"table_bytes"`, applied at the end of the transaction.
    bytes: ByteDeltas,
}

impl Inner {
    /// Writes one version of `key` (`encoded`: tag and value) and its change-log row.
    fn put_version(
        &self,
        op: &str,
        tables: &mut WriteTables<'_>,
        key: &[u8],
        ts: Timestamp,
        encoded: &[u8],
    ) -> Result<()> {
        tables.mvcc.insert(version_key(key, ts), encoded).map_err(|e| self.err(op, e))?;
        tables.changes.insert((ts.wall, ts.logical, key), encoded).map_err(|e| self.err(op, e))?;
        tables.bytes.count(key, encoded.len(), 1);
        Ok(())
    }

    /// Runs `fill` in one write transaction at a fresh timestamp, which it also persists as the
    /// last one issued, committed with `durability`.
    pub(super) fn transact_at_fresh_ts(
        &self,
        op: &str,
        durability: redb::Durability,
        fill: impl FnOnce(&redb::WriteTransaction, Timestamp) -> Result<()>,
    ) -> Result<Timestamp> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(op, e))?;
        txn.set_durability(durability).map_err(|e| self.err(op, e))?;
        let pending = self.clock.issue();
        let ts = pending.ts;
        fill(&txn, ts)?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(op, e))?;
            meta.insert(LAST_TIMESTAMP_KEY, encode_ts(ts).as_slice()).map_err(|e| self.err(op, e))?;
        }
        txn.commit().map_err(|e| self.err(op, e))?;
        drop(pending);
        Ok(ts)
    }

    /// Runs `fill` in one durable write transaction at a fresh timestamp (see
    /// [`Inner::transact_at_fresh_ts`]). `fill` writes versions with [`Inner::put_version`].
    /// The records of the restores' ingests into `published` (spans of tables the transaction
    /// publishes) go in the same transaction.
    fn write_at_fresh_ts(
        &self,
        op: &str,
        published: &[Span],
        fill: impl FnOnce(&mut WriteTables<'_>, Timestamp) -> Result<()>,
    ) -> Result<Timestamp> {
        self.transact_at_fresh_ts(op, redb::Durability::Immediate, |txn, ts| {
            let mvcc = txn.open_table(MVCC).map_err(|e| self.err(op, e))?;
            let changes = txn.open_table(CHANGES).map_err(|e| self.err(op, e))?;
            let mut tables = WriteTables { mvcc, changes, bytes: ByteDeltas::default() };
            fill(&mut tables, ts)?;
            if !published.is_empty() {
                let mut pending = txn.open_table(PENDING_INGESTS).map_err(|e| self.err(op, e))?;
                for span in published {
                    pending.remove(span.start.as_slice()).map_err(|e| self.err(op, e))?;
                }
            }
            self.apply_byte_deltas(op, txn, tables.bytes)
        })
    }

    /// Writes `batch` (a value, or `None` for a deletion, per key) at one fresh timestamp:
    /// [`KvStore::write`](strata_core::KvStore::write), `put` and `delete`.
    pub(super) fn write(&self, op: &str, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.write_publishing(op, batch, &[])
    }

    /// [`KvSink::publish`](strata_core::KvSink::publish): the descriptors' writes, which drop the
    /// records of the ingests into the tables they publish.
    pub(super) fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        let (writes, published) = store_pending::publish_writes(changes);
        self.write_publishing("publish of descriptors", writes, &published)
    }

    /// [`Inner::write`] of `batch`, dropping the ingest records of `published`.
    fn write_publishing(
        &self,
        op: &str,
        batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        published: &[Span],
    ) -> Result<Timestamp> {
        self.write_at_fresh_ts(op, published, |tables, ts| {
            let mut buf = Vec::new();
            for (key, value) in &batch {
                buf.clear();
                match value {
                    Some(v) => {
                        buf.push(TAG_VALUE);
                        buf.extend_from_slice(v);
                    }
                    None => buf.push(TAG_TOMBSTONE),
                }
                self.put_version(op, tables, key, ts, &buf)?;
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
        self.write_at_fresh_ts(OP, &[], |tables, ts| {
            // The newest version of the counter, whatever its timestamp.
            {
                let newest = tables
                    .mvcc
                    .range::<(&[u8], u64, u32)>(
                        (keys::ID_COUNTER_KEY, 0, 0)..=(keys::ID_COUNTER_KEY, u64::MAX, u32::MAX),
                    )
                    .map_err(|e| self.err(OP, e))?
                    .next()
                    .transpose()
                    .map_err(|e| self.err(OP, e))?;
                if let Some((_, v)) = newest {
                    if let Some(bytes) = self.decode_value(keys::ID_COUNTER_KEY, v.value())? {
                        if let Ok(b) = <[u8; 4]>::try_from(bytes) {
                            first = u32::from_be_bytes(b);
                        }
                    }
                }
            }
            let next = first.checked_add(count).ok_or_else(|| Error::Kv {
                message: format!("cannot allocate {count} descriptor ids after {first}: the id space is exhausted"),
                status: Status::Permanent,
            })?;
            let mut value = vec![TAG_VALUE];
            value.extend_from_slice(&next.to_be_bytes());
            self.put_version(OP, tables, keys::ID_COUNTER_KEY, ts, &value)
        })?;
        Ok(first)
    }
}
