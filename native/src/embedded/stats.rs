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
use crate::store_common::apply_delta;

pub(super) const TABLE_BYTES: TableDefinition<'static, u32, u64> = TableDefinition::new("table_bytes");
/// In `"meta"`: present in a store whose `"table_bytes"` counts everything it holds.
pub(super) const COUNTED_KEY: &str = "table_bytes_counted";
/// The changes to `"table_bytes"` one transaction makes, summed per table, and the row of keys
/// outside every table.
pub(super) use crate::store_common::{ByteDeltas, OTHER};

impl Inner {
    /// Adds `deltas` to `"table_bytes"` in `txn`.
    pub(super) fn apply_byte_deltas(&self, op: &str, txn: &WriteTransaction, deltas: ByteDeltas) -> Result<()> {
        let sums = deltas.into_sums();
        if sums.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(TABLE_BYTES).map_err(|e| self.err(op, e))?;
        for (id, sum) in sums {
            let old = table.get(id).map_err(|e| self.err(op, e))?.map_or(0, |v| v.value());
            table.insert(id, apply_delta(old, sum)).map_err(|e| self.err(op, e))?;
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
