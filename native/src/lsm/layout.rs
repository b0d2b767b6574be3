//! The store's keyspaces and how their keys and values are encoded; opening a database: checking
//! the directory, writing the layout version of a new store and checking that of an existing one,
//! and loading the clock and the byte counts.
//!
//! The layout itself is documented on [`LsmStore`](super::LsmStore) (it is part of the public
//! docs); every other submodule reads and writes the keyspaces through the definitions here.

use std::ops::Bound;
use std::path::Path;

use fjall::config::{BlockSizePolicy, CompressionPolicy, FilterPolicy};
use fjall::{CompressionType, KeyspaceCreateOptions, PersistMode, Readable};
use strata_core::{Error, Result, Timestamp};

use super::Inner;
use crate::store_common::decode_version;

pub(super) const VERSIONS: &str = "versions";
pub(super) const CHANGES: &str = "changes";
pub(super) const INGESTED: &str = "ingested";
pub(super) const META: &str = "meta";
pub(super) const TABLE_BYTES: &str = "table_bytes";
/// span start -> span end: the spans a restore ingests into, from before its first ingest until
/// its publish or a discard (see `crate::store_pending`). Created on open; a store of an earlier
/// strata has none, and an earlier strata ignores it.
pub(super) const PENDING_INGESTS: &str = "pending_ingests";

const LAYOUT_VERSION_KEY: &str = "layout_version";
pub(super) const LAST_TIMESTAMP_KEY: &str = "last_timestamp";
pub(super) const GC_THRESHOLD_KEY: &str = "gc_threshold";
/// 1: `"versions"`, `"changes"` (keys only), `"ingested"`, `"meta"`, `"table_bytes"`.
/// 2: the rows of `"changes"` hold the version they record (a scan of changes reads the index
///    alone: in layout 1 it looked each changed key up in `"versions"`, one fjall range per key,
///    which made a 1% incremental cost 18-28% of a full backup). Layout 1 stores are refused;
///    the store was never the default.
pub(super) const LAYOUT_VERSION: u32 = 2;

/// The first byte of a stored version: a deletion or a value.
pub(super) use crate::store_common::{TAG_TOMBSTONE, TAG_VALUE};

/// The bytes of a version's timestamp that follow its escaped key in `"versions"`: the
/// terminator `0x00 0x01` and the inverted timestamp.
const VERSION_SUFFIX: usize = 14;

/// The keys of keyspaces read only by ranges: 16 KiB data blocks, LZ4 at every level, no bloom
/// filters (they answer point reads of whole keys, which these keyspaces never get), and
/// memtables of 8 MiB instead of fjall's 64 (two keyspaces take writes, each with a memtable
/// being flushed beside the one written: 64 MiB ones put the process above 400 MiB resident, and
/// with a 32 MiB block cache, 16 MiB ones kept an encrypted backup of the bench's million keys
/// at 290 MiB, 8 MiB ones at 262 MiB).
pub(super) fn range_keyspace() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .max_memtable_size(8 << 20)
        .data_block_size_policy(BlockSizePolicy::all(16 << 10))
        .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
        .filter_policy(FilterPolicy::disabled())
}

/// Appends `mvcc_key(key, ts)` ([`strata_core::mvcc_key`]) to `out`, without allocating.
#[inline]
pub(super) fn push_version_key(out: &mut Vec<u8>, key: &[u8], ts: Timestamp) {
    strata_core::push_mvcc_key(out, key, ts);
}

/// `mvcc_key(key, ts)`.
pub(super) fn version_key(key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::new();
    push_version_key(&mut out, key, ts);
    out
}

/// A stored version's key split into its escaped key (equal for every version of one key, and
/// for no other key) and its timestamp; `None` if it is not an `mvcc_key`.
#[inline]
pub(super) fn split_version(encoded: &[u8]) -> Option<(&[u8], Timestamp)> {
    let at = encoded.len().checked_sub(VERSION_SUFFIX)?;
    let (escaped, suffix) = encoded.split_at(at);
    if suffix[..2] != [0x00, 0x01] {
        return None;
    }
    let wall = !u64::from_be_bytes(suffix[2..10].try_into().ok()?);
    let logical = !u32::from_be_bytes(suffix[10..].try_into().ok()?);
    Some((escaped, Timestamp::new(wall, logical)))
}

/// The key of an escaped key (see [`split_version`]) into `out`; `false` if the escapes are
/// invalid.
#[inline]
pub(super) fn unescape(escaped: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut bytes = escaped.iter();
    while let Some(&b) = bytes.next() {
        out.push(b);
        if b == 0 && bytes.next() != Some(&0xff) {
            return false;
        }
    }
    true
}

/// A timestamp as stored: wall u64 BE ++ logical u32 BE.
pub(super) fn encode_ts(ts: Timestamp) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&ts.wall.to_be_bytes());
    out[8..].copy_from_slice(&ts.logical.to_be_bytes());
    out
}

/// The timestamp of 12 stored bytes.
pub(super) fn decode_ts(bytes: &[u8]) -> Option<Timestamp> {
    let b: &[u8; 12] = bytes.try_into().ok()?;
    Some(Timestamp::new(
        u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
        u32::from_be_bytes(b[8..].try_into().expect("4 bytes")),
    ))
}

/// A row of `"changes"` or `"ingested"`: timestamp ++ key.
pub(super) fn change_key(ts: Timestamp, key: &[u8]) -> Vec<u8> {
    [encode_ts(ts).as_slice(), key].concat()
}

/// The timestamp and key of a row of `"changes"` or `"ingested"`.
#[inline]
pub(super) fn split_change_key(row: &[u8]) -> Option<(Timestamp, &[u8])> {
    let (ts, key) = row.split_at_checked(12)?;
    Some((decode_ts(ts)?, key))
}

/// Bounds of the rows of `"changes"` (or `"ingested"`) with a timestamp in `(start, end]`, for
/// `start < end`.
pub(super) fn change_bounds(start: Timestamp, end: Timestamp) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    // `start < end <= MAX`, so `start.next()` does not overflow.
    let lower = Bound::Included(encode_ts(start.next()).to_vec());
    let upper = if end == Timestamp::MAX { Bound::Unbounded } else { Bound::Excluded(encode_ts(end.next()).to_vec()) };
    (lower, upper)
}

pub(super) use crate::store_common::successor;

/// The row of `"table_bytes"` of keys outside every table.
pub(super) use crate::store_common::OTHER;

/// Checks that `path` can be an LSM store's database: absent, an empty directory, or a directory
/// with fjall's `version` marker. The error says why not.
pub(super) fn check_directory(path: &Path) -> std::result::Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    if !meta.is_dir() {
        return Err(format!("cannot open {}: it is a file, not an LSM store's directory", path.display()));
    }
    if path.join("version").is_file() {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match entries.next() {
        None => Ok(()),
        Some(_) => Err(format!(
            "cannot open {}: it is not a strata LSM store (no fjall \"version\" marker, and it is not empty)",
            path.display()
        )),
    }
}

impl Inner {
    /// The value of a stored version: `None` for a tombstone.
    #[inline]
    pub(super) fn decode_value<'v>(&self, key: &[u8], bytes: &'v [u8]) -> Result<Option<&'v [u8]>> {
        decode_version(key, bytes, |message| self.corrupt(message))
    }

    /// A timestamp stored in `"meta"` under `name` (read from `from`, a snapshot or the live
    /// keyspace), [`Timestamp::ZERO`] if there is none.
    pub(super) fn read_meta_ts(&self, from: &impl Readable, name: &str) -> Result<Timestamp> {
        match from.get(&self.meta, name).map_err(|e| self.err("read of the store's metadata", e))? {
            Some(v) => {
                decode_ts(&v).ok_or_else(|| self.corrupt(format!("{name} is {} bytes long, expected 12", v.len())))
            }
            None => Ok(Timestamp::ZERO),
        }
    }

    /// Writes the layout version of a new store, checks that of an existing one, loads the byte
    /// counts, and returns the last timestamp issued.
    pub(super) fn init(&self) -> Result<Timestamp> {
        const OP: &str = "opening the store";
        let version = self.meta.get(LAYOUT_VERSION_KEY).map_err(|e| self.err(OP, e))?;
        match version {
            None => {
                let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
                batch.insert(&self.meta, LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice());
                batch.commit().map_err(|e| self.err(OP, e))?;
            }
            Some(v) if *v == LAYOUT_VERSION.to_be_bytes() => {}
            Some(v) => {
                return Err(Error::NotSupported {
                    feature: format!(
                        "the LSM store layout version {} of {} (this strata reads version {LAYOUT_VERSION})",
                        match <[u8; 4]>::try_from(&*v) {
                            Ok(b) => u32::from_be_bytes(b).to_string(),
                            Err(_) => format!("{:02x?}", &*v),
                        },
                        self.path.display()
                    ),
                })
            }
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for row in self.table_bytes.iter() {
            let (k, v) = row.into_inner().map_err(|e| self.err(OP, e))?;
            let (Ok(id), Ok(bytes)) = (<[u8; 4]>::try_from(&*k), <[u8; 8]>::try_from(&*v)) else {
                return Err(self.corrupt(format!("a row of \"table_bytes\" has {} and {} bytes", k.len(), v.len())));
            };
            counts.insert(u32::from_be_bytes(id), u64::from_be_bytes(bytes));
        }
        self.read_meta_ts(&self.db.snapshot(), LAST_TIMESTAMP_KEY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_are_core_mvcc_keys_and_split_back() {
        for key in [&b""[..], b"a", b"a\x00", b"\x00\xff\x00", b"\x10\x00\x00\x00\x69abc"] {
            for ts in [Timestamp::ZERO, Timestamp::new(5, 7), Timestamp::MAX] {
                let encoded = version_key(key, ts);
                assert_eq!(encoded, strata_core::mvcc_key(key, ts));
                let (escaped, got) = split_version(&encoded).unwrap();
                assert_eq!(got, ts);
                let mut out = Vec::new();
                assert!(unescape(escaped, &mut out));
                assert_eq!(out, key);
            }
        }
        assert!(split_version(b"short").is_none());
        assert!(!unescape(b"a\x00b", &mut Vec::new()));
    }
}
