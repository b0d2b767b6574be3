//! `"table_bytes"`: how many bytes each table's stored versions hold (key and stored value, every
//! version), kept up to date by every transaction that adds or removes versions, as CockroachDB
//! keeps a range's MVCC statistics with its writes. It answers
//! [`KvSource::estimate_bytes`](strata_core::KvSource::estimate_bytes) without a scan, which a
//! backup uses to weigh its work units for its progress `fraction`.
//!
//! Rows: table id (u32) -> bytes (u64). Keys outside every table (the system span: descriptors,
//! the id counter) count under [`OTHER`]. A store created before this table existed has no counts
//! for what it already holds: `"meta"` holds [`COUNTED_KEY`] only in a store counted since its
//! creation, and the others answer "unknown". An older strata writing to a store leaves its
//! counts low; they are estimates, used for nothing but progress.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use strata_core::{keys, Result, Span};

use super::layout::META;
use super::Inner;

pub(super) const TABLE_BYTES: TableDefinition<'static, u32, u64> = TableDefinition::new("table_bytes");
/// In `"meta"`: present in a store whose `"table_bytes"` counts everything it holds.
pub(super) const COUNTED_KEY: &str = "table_bytes_counted";
/// The row of keys outside every table.
const OTHER: u32 = u32::MAX;

/// The row a key counts in.
#[inline]
fn bucket(key: &[u8]) -> u32 {
    keys::decode_table_key(key).map_or(OTHER, |(id, _)| id)
}

/// The changes to `"table_bytes"` one transaction makes, summed per table as versions are added
/// and removed (in key order, runs of one table are summed without a lookup).
#[derive(Default)]
pub(super) struct ByteDeltas {
    current: Option<(u32, i64)>,
    done: Vec<(u32, i64)>,
}

impl ByteDeltas {
    /// Counts a version of `key` whose stored value is `stored` bytes long, added (`sign` 1) or
    /// removed (-1).
    #[inline]
    pub(super) fn count(&mut self, key: &[u8], stored: usize, sign: i64) {
        let (id, bytes) = (bucket(key), sign * (key.len() + stored) as i64);
        match &mut self.current {
            Some((current, sum)) if *current == id => *sum += bytes,
            current => {
                if let Some(previous) = current.replace((id, bytes)) {
                    self.done.push(previous);
                }
            }
        }
    }
}

impl Inner {
    /// Adds `deltas` to `"table_bytes"` in `txn`.
    pub(super) fn apply_byte_deltas(&self, op: &str, txn: &WriteTransaction, deltas: ByteDeltas) -> Result<()> {
        let mut all = deltas.done;
        all.extend(deltas.current);
        if all.is_empty() {
            return Ok(());
        }
        all.sort_unstable_by_key(|(id, _)| *id);
        let mut table = txn.open_table(TABLE_BYTES).map_err(|e| self.err(op, e))?;
        let mut i = 0;
        while i < all.len() {
            let id = all[i].0;
            let mut sum = 0i64;
            while i < all.len() && all[i].0 == id {
                sum += all[i].1;
                i += 1;
            }
            let old = table.get(id).map_err(|e| self.err(op, e))?.map_or(0, |v| v.value());
            let new = if sum >= 0 { old.saturating_add(sum as u64) } else { old.saturating_sub(sum.unsigned_abs()) };
            table.insert(id, new).map_err(|e| self.err(op, e))?;
        }
        Ok(())
    }

    /// [`KvSource::estimate_bytes`](strata_core::KvSource::estimate_bytes): the bytes of every
    /// table (and of the keys outside tables) whose keys overlap `span`; `None` in a store not
    /// counted since its creation.
    pub(super) fn estimate_bytes(&self, span: &Span) -> Result<Option<u64>> {
        const OP: &str = "read of the table sizes";
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        if meta.get(COUNTED_KEY).map_err(|e| self.err(OP, e))?.is_none() || span.is_empty() {
            return Ok(None);
        }
        let table = txn.open_table(TABLE_BYTES).map_err(|e| self.err(OP, e))?;
        let mut sum = 0u64;
        for row in table.iter().map_err(|e| self.err(OP, e))? {
            let (id, bytes) = row.map_err(|e| self.err(OP, e))?;
            let overlaps = match id.value() {
                // Keys outside tables sort before them (the system span) or after (none today).
                OTHER => span.start.as_slice() < keys::table_prefix(0).as_slice(),
                id => {
                    let t = keys::table_span(id);
                    span.start < t.end && t.start < span.end
                }
            };
            if overlaps {
                sum = sum.saturating_add(bytes.value());
            }
        }
        Ok(Some(sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_sum_per_table_in_any_order() {
        let mut d = ByteDeltas::default();
        let (a, b) = (keys::table_key(104, b"k"), keys::table_key(105, b"k"));
        d.count(&a, 10, 1);
        d.count(&a, 5, 1);
        d.count(&b, 1, 1);
        d.count(&a, 10, -1);
        d.count(keys::ID_COUNTER_KEY, 4, 1);
        let mut all = d.done;
        all.extend(d.current);
        let sum = |id: u32| all.iter().filter(|(i, _)| *i == id).map(|(_, s)| s).sum::<i64>();
        assert_eq!(sum(104), (a.len() + 5) as i64);
        assert_eq!(sum(105), (b.len() + 1) as i64);
        assert_eq!(sum(OTHER), (keys::ID_COUNTER_KEY.len() + 4) as i64);
    }
}
