//! The history index: every version of the store's keys since etcd's compaction revision, built
//! from etcd's own history (a Range at the compaction revision, then a watch from the revision
//! after it) and answering scans in memory. Pure: events in, pages out.
//!
//! Memory follows what etcd itself keeps: the live keys plus every version written since the
//! last compaction (etcd's `--quota-backend-bytes`, 2 GiB by default, bounds both).

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use strata_core::{MvccFilter, PageBuilder, ScanPage, Span};

use crate::clock::Ticks;

/// One change seen in etcd's history, in strata's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A version of a strata key (`None`: a deletion).
    Version { key: Vec<u8>, rev: i64, value: Option<Bytes> },
    /// A clock tick.
    Tick { rev: i64, wall: u64 },
    /// `discard()` at `rev`: every version at or below it in these spans is gone.
    Discard { rev: i64, spans: Vec<Span> },
}

/// Versions of one key, by revision.
type Versions = BTreeMap<i64, Option<Bytes>>;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Index {
    data: BTreeMap<Vec<u8>, Versions>,
    pub(crate) ticks: Ticks,
    /// Every change at or below this revision has been applied.
    pub(crate) applied: i64,
    /// etcd's compaction revision as far as the index knows (0: never compacted).
    pub(crate) compacted: i64,
}

impl Index {
    /// Applies one change of history.
    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Version { key, rev, value } => {
                self.data.entry(key).or_default().insert(rev, value);
            }
            Change::Tick { rev, wall } => self.ticks.insert(rev, wall),
            Change::Discard { rev, spans } => {
                for span in spans.iter().filter(|s| !s.is_empty()) {
                    let keys: Vec<Vec<u8>> = self
                        .data
                        .range::<[u8], _>((Bound::Included(&span.start[..]), Bound::Excluded(&span.end[..])))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        let versions = self.data.get_mut(&k).expect("listed");
                        versions.retain(|r, _| *r > rev);
                        if versions.is_empty() {
                            self.data.remove(&k);
                        }
                    }
                }
            }
        }
    }

    /// Marks every revision up to `rev` as applied.
    pub(crate) fn advance(&mut self, rev: i64) {
        self.applied = self.applied.max(rev);
    }

    /// etcd compacted at `rev`: keep, per key, the newest version at or below it unless it is a
    /// deletion, and everything above it.
    pub(crate) fn compact(&mut self, rev: i64) {
        if rev <= self.compacted {
            return;
        }
        self.compacted = rev;
        for versions in self.data.values_mut() {
            let newest_below = versions.range(..=rev).next_back().map(|(r, v)| (*r, v.is_some()));
            if let Some((newest, live)) = newest_below {
                versions.retain(|r, _| *r > rev || (*r == newest && live));
            }
        }
        self.data.retain(|_, v| !v.is_empty());
    }

    /// The newest version of `key` at or below `rev`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8], rev: i64) -> Option<(i64, Option<Bytes>)> {
        self.data.get(key)?.range(..=rev).next_back().map(|(r, v)| (*r, v.clone()))
    }

    /// One page of versions of `span` with revisions in `(start, end]`, keys ascending and
    /// versions newest first, ending after `target_bytes` at a key boundary; `resume_key` is the
    /// next key holding any version at all (as [`strata_core::MemKv`] does).
    pub(crate) fn scan(&self, span: &Span, start: i64, end: i64, filter: MvccFilter, target_bytes: u64) -> ScanPage {
        let mut page = PageBuilder::default();
        if span.is_empty() || end <= start {
            return page.finish(None);
        }
        let mut bytes = 0u64;
        let range = self.data.range::<[u8], _>((Bound::Included(&span.start[..]), Bound::Excluded(&span.end[..])));
        for (key, versions) in range {
            if bytes >= target_bytes {
                return page.finish(Some(key.clone()));
            }
            for (rev, value) in versions.range(start + 1..=end).rev() {
                bytes += (key.len() + value.as_ref().map_or(0, |v| v.len())) as u64;
                page.push(key, self.ticks.ts_of(*rev), value.as_deref());
                if filter == MvccFilter::Latest {
                    break;
                }
            }
        }
        page.finish(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(index: &mut Index, key: &str, rev: i64, value: Option<&str>) {
        let value = value.map(|v| Bytes::copy_from_slice(v.as_bytes()));
        index.apply(Change::Version { key: key.as_bytes().to_vec(), rev, value });
        index.advance(rev);
    }

    #[test]
    fn compaction_keeps_what_memkv_gc_keeps() {
        let mut index = Index::default();
        put(&mut index, "a", 1, Some("1"));
        put(&mut index, "a", 2, Some("2"));
        put(&mut index, "b", 3, Some("1"));
        put(&mut index, "b", 4, None);
        put(&mut index, "a", 5, Some("3"));
        index.compact(4);
        assert_eq!(index.get(b"a", 4), Some((2, Some(Bytes::from_static(b"2")))));
        assert_eq!(index.get(b"a", 1), None);
        assert_eq!(index.get(b"b", 10), None, "a key deleted at or below the compaction is gone");
        let page = index.scan(&Span::new(b"a".to_vec(), b"c".to_vec()), 0, 10, MvccFilter::AllRevisions, 1 << 20);
        assert_eq!(page.entries.len(), 2);
    }

    #[test]
    fn discard_hides_versions_up_to_its_revision() {
        let mut index = Index::default();
        put(&mut index, "a", 1, Some("1"));
        put(&mut index, "b", 2, Some("1"));
        index.apply(Change::Discard { rev: 3, spans: vec![Span::new(b"a".to_vec(), b"b".to_vec())] });
        put(&mut index, "a", 4, Some("2"));
        let page = index.scan(&Span::new(b"a".to_vec(), b"z".to_vec()), 0, 10, MvccFilter::AllRevisions, 1 << 20);
        let revs: Vec<_> = page.entries.iter().map(|e| (e.key.to_vec(), e.value.clone())).collect();
        assert_eq!(
            revs,
            vec![(b"a".to_vec(), Some(Bytes::from_static(b"2"))), (b"b".to_vec(), Some(Bytes::from_static(b"1")))]
        );
    }
}
