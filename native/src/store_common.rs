//! What both embedded stores ([`EmbeddedStore`](crate::EmbeddedStore) on redb and
//! [`LsmStore`](crate::LsmStore) on fjall) do the same way whatever the engine: the tag of a
//! stored version, the per-table byte counts a commit changes, the page buffer sizing of scans
//! and the counters of rows read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_core::{keys, Error, Result, ScanRequest};

/// The first byte of a stored version: a deletion, nothing follows.
pub(crate) const TAG_TOMBSTONE: u8 = 0;
/// The first byte of a stored version: the value follows.
pub(crate) const TAG_VALUE: u8 = 1;

/// The value of a stored version (`None` for a tombstone), or what is wrong with it.
#[inline]
pub(crate) fn decode_stored(bytes: &[u8]) -> std::result::Result<Option<&[u8]>, String> {
    match bytes.split_first() {
        Some((&TAG_VALUE, value)) => Ok(Some(value)),
        Some((&TAG_TOMBSTONE, [])) => Ok(None),
        Some((tag, _)) => Err(format!("has unknown tag {tag}")),
        None => Err("is empty".to_string()),
    }
}

/// The value of a stored version of `key` (`None` for a tombstone), or `corrupt`'s error (the
/// store's, naming its file) saying what is wrong with it.
#[inline]
pub(crate) fn decode_version<'v>(
    key: &[u8],
    bytes: &'v [u8],
    corrupt: impl FnOnce(String) -> Error,
) -> Result<Option<&'v [u8]>> {
    decode_stored(bytes).map_err(|why| corrupt(format!("version of {} {why}", keys::pretty_key(key))))
}

/// The smallest key above `key`.
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    [key, &[0]].concat()
}

/// The row of the byte counts (`"table_bytes"`) of keys outside every table.
pub(crate) const OTHER: u32 = u32::MAX;

/// The row of the byte counts a key counts in: its table id, or [`OTHER`] outside tables.
#[inline]
pub(crate) fn bucket(key: &[u8]) -> u32 {
    keys::decode_table_key(key).map_or(OTHER, |(id, _)| id)
}

/// What one commit adds to (or removes from) the byte counts, per table.
#[derive(Default)]
pub(crate) struct ByteDeltas {
    /// The table of the last version counted and its sum (versions come in key order, so runs of
    /// one table are summed without a lookup).
    current: Option<(u32, i64)>,
    done: BTreeMap<u32, i64>,
}

impl ByteDeltas {
    /// Counts a version of `key` whose stored value is `stored` bytes long, added (`sign` 1) or
    /// removed (-1).
    #[inline]
    pub(crate) fn count(&mut self, key: &[u8], stored: usize, sign: i64) {
        let (id, bytes) = (bucket(key), sign * (key.len() + stored) as i64);
        match &mut self.current {
            Some((current, sum)) if *current == id => *sum += bytes,
            current => {
                if let Some((id, sum)) = current.replace((id, bytes)) {
                    *self.done.entry(id).or_default() += sum;
                }
            }
        }
    }

    /// The change of each table's count, by table id.
    pub(crate) fn into_sums(mut self) -> BTreeMap<u32, i64> {
        if let Some((id, sum)) = self.current.take() {
            *self.done.entry(id).or_default() += sum;
        }
        self.done
    }
}

/// A count after a change of `sum` (never below zero or past `u64::MAX`: counts are estimates).
#[inline]
pub(crate) fn apply_delta(old: u64, sum: i64) -> u64 {
    if sum >= 0 {
        old.saturating_add(sum as u64)
    } else {
        old.saturating_sub(sum.unsigned_abs())
    }
}

/// Adds the rows an operation read to a counter when it ends, whichever way it ends.
pub(crate) struct RowCount<'a> {
    counter: &'a AtomicU64,
    pub(crate) rows: u64,
}

impl<'a> RowCount<'a> {
    pub(crate) fn new(counter: &'a AtomicU64) -> Self {
        RowCount { counter, rows: 0 }
    }
}

impl Drop for RowCount<'_> {
    fn drop(&mut self) {
        self.counter.fetch_add(self.rows, Ordering::Relaxed);
    }
}

/// Bytes to reserve up front for a scan page's keys and values: the target and room for the key
/// that crosses it, so a page is built without reallocating (and copying) its buffer. At most
/// 16 MiB; a reservation that large is mapped lazily, so a small scan with a huge target costs
/// no memory it does not fill.
pub(crate) fn page_capacity(request: &ScanRequest) -> usize {
    usize::try_from(request.target_bytes).unwrap_or(usize::MAX).saturating_add(64 << 10).min(16 << 20)
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
        let sums = d.into_sums();
        assert_eq!(sums[&104], (a.len() + 5) as i64);
        assert_eq!(sums[&105], (b.len() + 1) as i64);
        assert_eq!(sums[&OTHER], (keys::ID_COUNTER_KEY.len() + 4) as i64);
        assert_eq!(sums.len(), 3);
    }

    #[test]
    fn stored_versions_decode_or_say_what_is_wrong() {
        assert_eq!(decode_stored(&[TAG_VALUE, 7]), Ok(Some(&[7u8][..])));
        assert_eq!(decode_stored(&[TAG_TOMBSTONE]), Ok(None));
        assert_eq!(decode_stored(&[TAG_TOMBSTONE, 1]), Err("has unknown tag 0".to_string()));
        assert_eq!(decode_stored(&[9]), Err("has unknown tag 9".to_string()));
        assert_eq!(decode_stored(&[]), Err("is empty".to_string()));
        assert_eq!((apply_delta(5, -9), apply_delta(u64::MAX, 1), apply_delta(5, -2)), (0, u64::MAX, 3));
    }
}
