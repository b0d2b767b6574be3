//! [`IngestBatch`]: the sorted key/value pairs a restore hands [`crate::KvSink::ingest`], packed
//! into one buffer.

/// Key/value pairs sorted by key, packed one after another into one buffer: what a restore hands
/// [`crate::KvSink::ingest`]. A restore builds one per sorted run of a span (up to its batch size,
/// 4 MiB by default) with two allocations in all, instead of two per pair; an engine reads the
/// pairs as borrowed slices ([`IngestBatch::iter`]) and copies them once, into its own format.
///
/// The pairs are in the order they were pushed; [`crate::KvSink::ingest`]'s contract has the
/// caller push them sorted by key, without duplicates.
///
/// ```
/// use strata_core::IngestBatch;
///
/// let mut batch = IngestBatch::new();
/// batch.push(b"a", b"1");
/// batch.push(b"b", b"22");
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.bytes(), 5);
/// assert_eq!(batch.iter().collect::<Vec<_>>(), [(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"22"[..])]);
/// // Tests and small callers can collect owned pairs into a batch.
/// let same: IngestBatch = vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"22".to_vec())].into();
/// assert_eq!(same, batch);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IngestBatch {
    /// Every pair's key then value, back to back.
    data: Vec<u8>,
    /// Per pair, where its key ends and where its value ends in `data` (its key starts where the
    /// previous pair's value ended).
    ends: Vec<(usize, usize)>,
}

impl IngestBatch {
    /// An empty batch.
    pub fn new() -> IngestBatch {
        IngestBatch::default()
    }

    /// An empty batch with room for `pairs` pairs of `bytes` key and value bytes in all.
    pub fn with_capacity(pairs: usize, bytes: usize) -> IngestBatch {
        IngestBatch { data: Vec::with_capacity(bytes), ends: Vec::with_capacity(pairs) }
    }

    /// Appends a pair (copying both).
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        self.data.extend_from_slice(key);
        let key_end = self.data.len();
        self.data.extend_from_slice(value);
        self.ends.push((key_end, self.data.len()));
    }

    /// Pairs in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the batch holds no pair.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of keys and values in the batch.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The `i`-th pair, if there is one.
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let &(key_end, value_end) = self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
        Some((&self.data[start..key_end], &self.data[key_end..value_end]))
    }

    /// The first pair's key.
    pub fn first_key(&self) -> Option<&[u8]> {
        self.get(0).map(|(k, _)| k)
    }

    /// The last pair's key.
    pub fn last_key(&self) -> Option<&[u8]> {
        self.len().checked_sub(1).and_then(|i| self.get(i)).map(|(k, _)| k)
    }

    /// The pairs, in order, borrowed from the batch.
    pub fn iter(&self) -> Iter<'_> {
        Iter { batch: self, front: 0, back: self.len() }
    }

    /// The pairs as owned vectors (for engines whose own API takes them).
    pub fn to_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }
}

impl std::fmt::Debug for IngestBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestBatch").field("pairs", &self.len()).field("bytes", &self.bytes()).finish()
    }
}

/// The pairs of an [`IngestBatch`]; see [`IngestBatch::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'b> {
    batch: &'b IngestBatch,
    front: usize,
    back: usize,
}

impl<'b> Iterator for Iter<'b> {
    type Item = (&'b [u8], &'b [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        self.batch.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.back - self.front, Some(self.back - self.front))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        self.batch.get(self.back)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'b> IntoIterator for &'b IngestBatch {
    type Item = (&'b [u8], &'b [u8]);
    type IntoIter = Iter<'b>;

    fn into_iter(self) -> Iter<'b> {
        self.iter()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for IngestBatch {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> IngestBatch {
        let mut batch = IngestBatch::new();
        for (k, v) in pairs {
            batch.push(k.as_ref(), v.as_ref());
        }
        batch
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> From<Vec<(K, V)>> for IngestBatch {
    fn from(pairs: Vec<(K, V)>) -> IngestBatch {
        pairs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    proptest! {
        #[test]
        fn pairs_come_back_as_pushed(pairs in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), prop::collection::vec(any::<u8>(), 0..8)), 0..20)) {
            let batch: IngestBatch = pairs.iter().cloned().collect();
            prop_assert_eq!(batch.len(), pairs.len());
            prop_assert_eq!(batch.bytes(), pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
            prop_assert_eq!(batch.to_pairs(), pairs.clone());
            let backwards: Vec<_> = batch.iter().rev().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(backwards, pairs.iter().rev().cloned().collect::<Vec<_>>());
            prop_assert_eq!(batch.first_key(), pairs.first().map(|(k, _)| &k[..]));
            prop_assert_eq!(batch.last_key(), pairs.last().map(|(k, _)| &k[..]));
        }
    }

    #[test]
    fn empty_keys_and_values_keep_their_places() {
        let batch: IngestBatch = vec![(&b""[..], &b"v"[..]), (b"k", b""), (b"", b"")].into();
        assert_eq!(batch.get(0), Some((&b""[..], &b"v"[..])));
        assert_eq!(batch.get(1), Some((&b"k"[..], &b""[..])));
        assert_eq!(batch.get(2), Some((&b""[..], &b""[..])));
        assert_eq!(batch.get(3), None);
        let mut batch = batch;
        batch.clear();
        assert!(batch.is_empty() && batch.iter().next().is_none());
    }
}
