//! strata keys ↔ etcd keys: the store's own rows under its root ([`Layout`]), and the rows of
//! mapped tables at their native etcd keys (`prefix + primary key`), so that other programs see
//! them and strata backs up what they wrote.

use std::collections::BTreeMap;

use bytes::Bytes;
use etcd_client::{DeleteOptions, PutOptions, TxnOp};
use strata_core::{keys, prefix_end, DescId, Error, Result, Span};

use crate::index::Change;
use crate::layout::{decode_value, encode_value, Layout, RootKey};

/// The layout of one store and its table mappings (fixed for the life of an open store).
#[derive(Debug, Clone)]
pub(crate) struct Keyspace {
    pub(crate) layout: Layout,
    /// Mapped table id → the etcd key prefix holding its rows.
    pub(crate) maps: BTreeMap<DescId, Vec<u8>>,
}

/// One piece of a strata span in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EtcdRange {
    pub(crate) start: Vec<u8>,
    pub(crate) end: Vec<u8>,
}

impl Keyspace {
    /// Checks that no mapped prefix contains another or the root (their rows would be read twice).
    pub(crate) fn new(layout: Layout, maps: BTreeMap<DescId, Vec<u8>>) -> Result<Keyspace> {
        let mut prefixes: Vec<(&[u8], String)> = vec![(layout.root(), "the store root".into())];
        prefixes.extend(maps.iter().map(|(id, p)| (p.as_slice(), format!("table {id}"))));
        for (i, (a, an)) in prefixes.iter().enumerate() {
            for (b, bn) in &prefixes[i + 1..] {
                if a.starts_with(b) || b.starts_with(a) {
                    return Err(Error::Precondition(format!(
                        "etcd prefixes {:?} ({an}) and {:?} ({bn}) overlap; mapped prefixes must be disjoint",
                        String::from_utf8_lossy(a),
                        String::from_utf8_lossy(b)
                    )));
                }
            }
        }
        Ok(Keyspace { layout, maps })
    }

    /// The etcd ranges loaded at the compaction revision: the root and every mapped prefix.
    pub(crate) fn load_ranges(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = vec![self.layout.root_range()];
        out.extend(self.maps.values().map(|p| (p.clone(), prefix_end(p))));
        out
    }

    /// One etcd range covering the root and every mapped prefix: one watch keeps every event in
    /// revision order, and the fence key (under the root) orders with all of them. Events of
    /// other keys inside it are dropped.
    pub(crate) fn watch_range(&self) -> (Vec<u8>, Vec<u8>) {
        let ranges = self.load_ranges();
        let start = ranges.iter().map(|r| r.0.clone()).min().expect("the root");
        let end = ranges.iter().map(|r| r.1.clone()).max().expect("the root");
        (start, end)
    }

    fn mapped<'a>(&self, etcd_key: &'a [u8]) -> Option<(DescId, &'a [u8])> {
        self.maps.iter().find_map(|(id, p)| etcd_key.strip_prefix(p.as_slice()).map(|rest| (*id, rest)))
    }

    /// What a version of `etcd_key` (`None`: deleted) at `rev` means to strata, if anything.
    /// `from_load`: read from a Range at the compaction revision rather than from the watch.
    pub(crate) fn change(&self, etcd_key: &[u8], rev: i64, value: Option<&[u8]>, from_load: bool) -> Option<Change> {
        match self.layout.classify(etcd_key) {
            // Rows a restore ingested under the root before it mapped the table: not its rows.
            Some(RootKey::Data(k)) if keys::decode_table_key(k).is_some_and(|(id, _)| self.maps.contains_key(&id)) => {
                None
            }
            Some(RootKey::Data(k)) => Some(Change::Version {
                key: k.to_vec(),
                rev,
                value: value.and_then(decode_value).map(Bytes::copy_from_slice),
            }),
            Some(RootKey::Tick(wall)) => value.map(|_| Change::Tick { rev, wall }),
            Some(RootKey::Discard) if !from_load => {
                let spans: Vec<Span> = postcard::from_bytes(value?).ok()?;
                Some(Change::Discard { rev, spans })
            }
            Some(_) => None,
            None => {
                let (id, suffix) = self.mapped(etcd_key)?;
                Some(Change::Version {
                    key: keys::table_key(id, suffix),
                    rev,
                    value: value.map(Bytes::copy_from_slice),
                })
            }
        }
    }

    /// The txn operation writing `value` (`None`: a deletion) at strata key `key`, and its size.
    pub(crate) fn write_op(&self, key: &[u8], value: Option<&[u8]>) -> (TxnOp, usize) {
        if let Some((id, suffix)) = keys::decode_table_key(key) {
            if let Some(prefix) = self.maps.get(&id) {
                let etcd_key = [prefix.as_slice(), suffix].concat();
                let size = etcd_key.len() + value.map_or(0, <[u8]>::len);
                return match value {
                    Some(v) => (TxnOp::put(etcd_key, v.to_vec(), None::<PutOptions>), size),
                    None => (TxnOp::delete(etcd_key, None::<DeleteOptions>), size),
                };
            }
        }
        let etcd_key = self.layout.data_key(key);
        let stored = encode_value(value);
        let size = etcd_key.len() + stored.len();
        (TxnOp::put(etcd_key, stored, None::<PutOptions>), size)
    }

    /// The etcd ranges holding the rows of a strata span: its own rows under the root, and the
    /// part of every mapped table inside it.
    pub(crate) fn ranges_of(&self, span: &Span) -> Vec<EtcdRange> {
        if span.is_empty() {
            return vec![];
        }
        let (start, end) = self.layout.data_range(span);
        let mut out = vec![EtcdRange { start, end }];
        for (id, prefix) in &self.maps {
            let part = span.intersect(&keys::table_span(*id));
            if part.is_empty() {
                continue;
            }
            let start = [prefix.as_slice(), &part.start[5.min(part.start.len())..]].concat();
            let end = if part.end == keys::table_span(*id).end {
                prefix_end(prefix)
            } else {
                [prefix.as_slice(), &part.end[5..]].concat()
            };
            out.push(EtcdRange { start, end });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_rows_live_at_their_native_keys() {
        let ks = Keyspace::new(Layout::new(b"/strata/"), BTreeMap::from([(105, b"/registry/".to_vec())])).unwrap();
        let change = ks.change(b"/registry/pods/a", 7, Some(b"v"), false);
        assert_eq!(
            change,
            Some(Change::Version {
                key: keys::table_key(105, b"pods/a"),
                rev: 7,
                value: Some(Bytes::from_static(b"v"))
            })
        );
        assert_eq!(ks.change(b"/other", 7, Some(b"v"), false), None);
        let ranges = ks.ranges_of(&keys::table_span(105));
        assert_eq!(ranges[1], EtcdRange { start: b"/registry/".to_vec(), end: b"/registry0".to_vec() });
        let ranges = ks.ranges_of(&Span::new(keys::table_key(105, b"a"), keys::table_key(105, b"b")));
        assert_eq!(ranges[1], EtcdRange { start: b"/registry/a".to_vec(), end: b"/registry/b".to_vec() });
        assert_eq!(ks.watch_range(), (b"/registry/".to_vec(), b"/strata0".to_vec()));
        assert!(Keyspace::new(Layout::new(b"/strata/"), BTreeMap::from([(1, b"/str".to_vec())])).is_err());
    }
}
