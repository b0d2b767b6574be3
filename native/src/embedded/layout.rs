//! The store's tables and how their keys and values are encoded; opening a database: creating the
//! tables of a new store, checking the layout version of an existing one and converting an older
//! layout to the current one.
//!
//! The layout itself is documented on [`EmbeddedStore`](super::EmbeddedStore) (it is part of the
//! public docs); every other submodule reads and writes the tables through the definitions here.

use std::ops::Bound;

use redb::{ReadableTable, TableDefinition};
use strata_core::{Error, Result, Timestamp};

use super::stats::{COUNTED_KEY, TABLE_BYTES};
use super::Inner;
use crate::store_common::decode_version;

/// `(key, u64::MAX - wall, u32::MAX - logical)`.
pub(super) type VersionKey = (&'static [u8], u64, u32);
/// `(wall, logical, key)`: one row per version, in timestamp order.
pub(super) type ChangeKey = (u64, u32, &'static [u8]);

pub(super) const MVCC: TableDefinition<'static, VersionKey, &'static [u8]> = TableDefinition::new("mvcc");
/// The change log: one row per written version, in timestamp order, holding the version's value
/// too (as `"mvcc"` does), so a scan of changes reads only this table.
pub(super) const CHANGES: TableDefinition<'static, ChangeKey, &'static [u8]> = TableDefinition::new("change_log");
/// Layout versions 2 and 3: the change index without values (converted on open).
const OLD_CHANGES: TableDefinition<'static, ChangeKey, ()> = TableDefinition::new("changes");
/// `(wall, logical, span start)` -> span end: the span of each ingest, whose versions have no
/// rows in `"change_log"`.
pub(super) const INGESTED: TableDefinition<'static, ChangeKey, &'static [u8]> = TableDefinition::new("ingested");
pub(super) const META: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("meta");
/// span start -> span end: the spans a restore ingests into, from before its first ingest until
/// its publish or a discard (see `crate::store_pending`). Created on open; a store of an earlier
/// strata has none, and an earlier strata ignores it.
pub(super) const PENDING_INGESTS: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("pending_ingests");

const LAYOUT_VERSION_KEY: &str = "layout_version";
pub(super) const LAST_TIMESTAMP_KEY: &str = "last_timestamp";
pub(super) const GC_THRESHOLD_KEY: &str = "gc_threshold";
/// 1: `"mvcc"` and `"meta"`. 2: adds `"changes"` (built in one pass when a version 1 store opens).
/// 3: adds `"ingested"`: ingested versions have no rows in `"changes"` (a version 2 store has no
/// such versions, so it moves to 3 by creating the empty table; a strata that reads version 2
/// would miss ingested versions in its scans of changes, and refuses version 3).
/// 4: `"changes"` (keys only) becomes `"change_log"`, whose rows hold the versions' values: a
/// scan of changes no longer looks each changed key up in `"mvcc"` (converted on open).
const LAYOUT_VERSION: u32 = 4;

/// The first byte of a stored version (in `"mvcc"` and `"change_log"`): a deletion or a value.
pub(super) use crate::store_common::{TAG_TOMBSTONE, TAG_VALUE};

#[inline]
pub(super) fn version_key(key: &[u8], ts: Timestamp) -> (&[u8], u64, u32) {
    (key, u64::MAX - ts.wall, u32::MAX - ts.logical)
}

#[inline]
pub(super) fn version_ts(inverted_wall: u64, inverted_logical: u32) -> Timestamp {
    Timestamp::new(u64::MAX - inverted_wall, u32::MAX - inverted_logical)
}

pub(super) use crate::store_common::successor;

/// Bounds of the change-log (or `"ingested"`) rows with a timestamp in `(start, end]`, for
/// `start < end`.
pub(super) fn change_bounds(start: Timestamp, end: Timestamp) -> (Bound<ChangeKey>, Bound<ChangeKey>) {
    // `start < end <= MAX`, so `start.next()` does not overflow.
    let first = start.next();
    let lower = Bound::Included((first.wall, first.logical, &[][..]));
    let upper = if end == Timestamp::MAX {
        Bound::Unbounded
    } else {
        let after = end.next();
        Bound::Excluded((after.wall, after.logical, &[][..]))
    };
    (lower, upper)
}

/// A timestamp as stored in `"meta"`: wall u64 BE ++ logical u32 BE.
pub(super) fn encode_ts(ts: Timestamp) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&ts.wall.to_be_bytes());
    out[8..].copy_from_slice(&ts.logical.to_be_bytes());
    out
}

// The helpers called once per row are `#[inline]`: they live in another module (so possibly
// another codegen unit) than the loops of scan.rs, changes.rs and gc.rs that call them.

impl Inner {
    fn decode_ts(&self, what: &str, bytes: &[u8]) -> Result<Timestamp> {
        let b: [u8; 12] =
            bytes.try_into().map_err(|_| self.corrupt(format!("{what} is {} bytes long, expected 12", bytes.len())))?;
        let wall = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
        let logical = u32::from_be_bytes(b[8..].try_into().expect("4 bytes"));
        Ok(Timestamp::new(wall, logical))
    }

    /// The value of a stored version: `None` for a tombstone.
    #[inline]
    pub(super) fn decode_value<'v>(&self, key: &[u8], bytes: &'v [u8]) -> Result<Option<&'v [u8]>> {
        decode_version(key, bytes, |message| self.corrupt(message))
    }

    /// A timestamp stored in `"meta"` under `name`, [`Timestamp::ZERO`] if there is none.
    pub(super) fn read_meta_ts(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
        name: &str,
    ) -> Result<Timestamp> {
        match meta.get(name).map_err(|e| self.err("read of the store's metadata", e))? {
            Some(v) => self.decode_ts(name, v.value()),
            None => Ok(Timestamp::ZERO),
        }
    }

    /// Creates the tables of a new store, checks the layout version of an existing one (moving an
    /// older one to version 4, see the on-disk layout), and returns the last timestamp issued.
    pub(super) fn init(&self) -> Result<Timestamp> {
        const OP: &str = "opening the store";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        let last = {
            let mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            let mut changes = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
            txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
            txn.open_table(PENDING_INGESTS).map_err(|e| self.err(OP, e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
            let version = meta.get(LAYOUT_VERSION_KEY).map_err(|e| self.err(OP, e))?.map(|v| v.value().to_vec());
            match version {
                None => {
                    meta.insert(LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| self.err(OP, e))?;
                    // A new store counts its tables' bytes from the start (see `stats`).
                    txn.open_table(TABLE_BYTES).map_err(|e| self.err(OP, e))?;
                    meta.insert(COUNTED_KEY, [1u8].as_slice()).map_err(|e| self.err(OP, e))?;
                }
                Some(v) if v == LAYOUT_VERSION.to_be_bytes() => {}
                Some(v) if v == 2u32.to_be_bytes() || v == 3u32.to_be_bytes() => {
                    // "ingested" was created above (empty, for version 2, which wrote index rows
                    // for every version). The index rows become change-log rows with values.
                    const UPGRADE: &str = "building the change log (layout version 2 or 3 to 4)";
                    {
                        let old = txn.open_table(OLD_CHANGES).map_err(|e| self.err(UPGRADE, e))?;
                        for row in old.iter().map_err(|e| self.err(UPGRADE, e))? {
                            let (k, _) = row.map_err(|e| self.err(UPGRADE, e))?;
                            let (wall, logical, key) = k.value();
                            let stored = mvcc
                                .get(version_key(key, Timestamp::new(wall, logical)))
                                .map_err(|e| self.err(UPGRADE, e))?;
                            // A row without its version (none should exist) is dropped.
                            if let Some(v) = stored {
                                changes.insert((wall, logical, key), v.value()).map_err(|e| self.err(UPGRADE, e))?;
                            }
                        }
                    }
                    txn.delete_table(OLD_CHANGES).map_err(|e| self.err(UPGRADE, e))?;
                    meta.insert(LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| self.err(UPGRADE, e))?;
                }
                Some(v) if v == 1u32.to_be_bytes() => {
                    const UPGRADE: &str = "building the change log (layout version 1 to 4)";
                    // Rows at or below the GC threshold are never read (see `gc`).
                    let threshold = self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?;
                    for row in mvcc.iter().map_err(|e| self.err(UPGRADE, e))? {
                        let (k, v) = row.map_err(|e| self.err(UPGRADE, e))?;
                        let (key, inverted_wall, inverted_logical) = k.value();
                        let ts = version_ts(inverted_wall, inverted_logical);
                        if ts > threshold {
                            changes.insert((ts.wall, ts.logical, key), v.value()).map_err(|e| self.err(UPGRADE, e))?;
                        }
                    }
                    meta.insert(LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| self.err(UPGRADE, e))?;
                }
                Some(v) => {
                    return Err(Error::NotSupported {
                        feature: format!(
                            "the store layout version {} of {} (this strata reads version {LAYOUT_VERSION})",
                            match <[u8; 4]>::try_from(v.as_slice()) {
                                Ok(b) => u32::from_be_bytes(b).to_string(),
                                Err(_) => format!("{v:02x?}"),
                            },
                            self.path.display()
                        ),
                    })
                }
            }
            self.read_meta_ts(&meta, LAST_TIMESTAMP_KEY)?
        };
        txn.commit().map_err(|e| self.err(OP, e))?;
        Ok(last)
    }
}
